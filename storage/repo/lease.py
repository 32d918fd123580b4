"""The leader lease: one row per lease name, taken when free or expired, renewed by its
holder with a compare-and-set on holder and token, and checked inside other transactions.

The token only grows: taking the lease (from anyone, even from oneself after it lapsed)
adds one, a renewal keeps it. A write that must only happen while its process leads checks
`holds` in its own transaction; `holds` touches the lease row (an update that changes
nothing) so that, where rows are locked (PostgreSQL), a takeover waits for that transaction
and a transaction that started under an old token cannot commit after the takeover.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from storage.repo.sql import Conn, fetch_one

LEADER = "leader"

# A check usable inside a write transaction: True while this process holds its lease.
Fence = Callable[[Conn], Awaitable[bool]]


@dataclass(frozen=True)
class Lease:
    holder: str
    token: int
    expires_at: float  # unix seconds


async def current(conn: Conn, name: str = LEADER) -> Lease | None:
    row = await fetch_one(
        conn, "SELECT holder, token, expires_at FROM leader_lease WHERE name = ?", (name,))
    if row is None:
        return None
    return Lease(str(row[0]), int(row[1]), float(row[2]))


async def acquire(conn: Conn, holder: str, now: float, length: float,
                  name: str = LEADER, *, from_holder: str | None = None) -> int | None:
    """Take the lease if nobody holds it, it expired, or `holder` has it already (or it is
    `from_holder`'s, known to be dead); the new token, or None when another holder's lease
    runs."""
    seen = await current(conn, name)
    expires = now + length
    if seen is None:
        cur = await conn.execute(
            """INSERT INTO leader_lease (name, holder, token, expires_at) VALUES (?, ?, 1, ?)
               ON CONFLICT (name) DO NOTHING""",
            (name, holder, expires),
        )
        return 1 if cur.rowcount == 1 else None
    if seen.expires_at > now and seen.holder not in (holder, from_holder):
        return None
    cur = await conn.execute(
        """UPDATE leader_lease SET holder = ?, token = token + 1, expires_at = ?
           WHERE name = ? AND token = ?""",
        (holder, expires, name, seen.token),
    )
    return seen.token + 1 if cur.rowcount == 1 else None


async def renew(conn: Conn, holder: str, token: int, now: float, length: float,
                name: str = LEADER) -> bool:
    """Extend the lease while it is still ours and has not lapsed."""
    cur = await conn.execute(
        """UPDATE leader_lease SET expires_at = ?
           WHERE name = ? AND holder = ? AND token = ? AND expires_at > ?""",
        (now + length, name, holder, token, now),
    )
    return cur.rowcount == 1


async def release(conn: Conn, holder: str, token: int, name: str = LEADER) -> bool:
    """Give the lease up at once (a clean stop), so a standby need not wait for its expiry."""
    cur = await conn.execute(
        "UPDATE leader_lease SET expires_at = 0 WHERE name = ? AND holder = ? AND token = ?",
        (name, holder, token),
    )
    return cur.rowcount == 1


async def holds(conn: Conn, token: int, now: float, name: str = LEADER) -> bool:
    """Whether `token` is the lease's and has not expired, checked in the caller's
    transaction (and, where rows are locked, holding the lease row until it ends)."""
    cur = await conn.execute(
        "UPDATE leader_lease SET token = token WHERE name = ? AND token = ? AND expires_at > ?",
        (name, token, now),
    )
    return cur.rowcount == 1
