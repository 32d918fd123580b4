"""The digests table (one message per chat and storm) and the cards a storm holds in one.

A card held in a digest has no message of its own: nothing of its incident is sent to that
chat but the digest, until it gets its own card (by the storm's rule, or a press on the
digest's open button).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from bot.models import Incident, IncidentStatus
from storage.repo.sql import Conn, fetch_all, fetch_one, parse_ts, req_ts, ts


@dataclass(frozen=True)
class DigestRow:
    id: int
    chat_id: int
    started_at: datetime
    ended_at: datetime | None
    drain_at: float
    message_id: int | None
    last_rendered_hash: str | None
    page: int


def _digest(row: aiosqlite.Row) -> DigestRow:
    return DigestRow(
        id=row["id"], chat_id=row["chat_id"], started_at=req_ts(row["started_at"]),
        ended_at=parse_ts(row["ended_at"]), drain_at=float(row["drain_at"]),
        message_id=row["message_id"], last_rendered_hash=row["last_rendered_hash"],
        page=row["page"],
    )


@dataclass(frozen=True)
class NewCard:
    """A pending outbox row that will post an incident's first card in a chat."""

    outbox_id: int
    incident_id: str
    chat_id: int
    severity: str


@dataclass(frozen=True)
class Listed:
    """What a digest shows of an incident (its line on a page, the counts, the order): read
    without the incident's labels and counts, since a storm's digest lists thousands and is
    rendered at every edit."""

    id: str
    title: str
    alertname: str
    namespace: str
    severity: str
    status: IncidentStatus
    opened_at: datetime

    @classmethod
    def of(cls, inc: Incident) -> Listed:
        return cls(inc.id, inc.title, inc.alertname, inc.namespace, inc.severity, inc.status,
                   inc.opened_at)


@dataclass(frozen=True)
class Entry:
    """An incident a digest lists: whether it is still held (no card of its own), and
    whether it is one the storm would give its own card (critical severity, or a decision
    waiting for people at high or critical risk)."""

    incident: Listed
    held: bool
    urgent: bool
    message_id: int | None


# A decision waiting for people at high or critical risk: the terms of the partial index
# decisions_risky, which SQLite uses only for a query that names them all.
_RISKY = """x.state = 'pending' AND json_extract(x.proposal, '$.action') IS NOT NULL
      AND json_extract(x.proposal, '$.risk') IN ('high', 'critical')"""
# Critical severity, or the current decision waits for people at high or critical risk
# (`!= 'superseded'` lets SQLite use the index of current decisions).
_URGENT = f"""(lower(i.severity) = 'critical' OR EXISTS (
    SELECT 1 FROM decisions x WHERE x.incident_id = i.id AND x.state != 'superseded'
      AND {_RISKY}))"""


async def new_cards(conn: Conn) -> list[NewCard]:
    """Every chat's backlog of first cards not yet sent that no storm has looked at (a
    digest lists every card a storm saw), oldest first per chat."""
    rows = await fetch_all(
        conn,
        """SELECT o.id, o.incident_id, o.chat_id, i.severity FROM outbox o
           JOIN cards c ON c.incident_id = o.incident_id AND c.chat_id = o.chat_id
           JOIN incidents i ON i.id = o.incident_id
           WHERE o.state = 'pending' AND o.kind = 'card' AND c.message_id IS NULL
             AND c.digest_id IS NULL
           ORDER BY o.chat_id, o.id""",
    )
    return [NewCard(r[0], r[1], r[2], r[3]) for r in rows]


async def open_digests(conn: Conn) -> list[DigestRow]:
    rows = await fetch_all(conn, "SELECT * FROM digests WHERE ended_at IS NULL ORDER BY id")
    return [_digest(r) for r in rows]


async def get_digest(conn: Conn, digest_id: int) -> DigestRow | None:
    row = await fetch_one(conn, "SELECT * FROM digests WHERE id = ?", (digest_id,))
    return _digest(row) if row else None


async def start_digest(conn: Conn, chat_id: int, now: datetime, drain_at: float) -> int:
    row = await fetch_one(
        conn, "INSERT INTO digests (chat_id, started_at, drain_at) VALUES (?,?,?) RETURNING id",
        (chat_id, ts(now), drain_at),
    )
    assert row is not None
    return int(row[0])


async def set_drain_at(conn: Conn, digest_id: int, drain_at: float) -> None:
    await conn.execute("UPDATE digests SET drain_at = ? WHERE id = ?", (drain_at, digest_id))


async def end_digest(conn: Conn, digest_id: int, now: datetime) -> None:
    await conn.execute("UPDATE digests SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                       (ts(now), digest_id))


async def set_page(conn: Conn, digest_id: int, page: int) -> None:
    await conn.execute("UPDATE digests SET page = ? WHERE id = ?", (page, digest_id))


async def save_message(conn: Conn, digest_id: int, message_id: int, rendered_hash: str) -> None:
    await conn.execute(
        "UPDATE digests SET message_id = ?, last_rendered_hash = ? WHERE id = ?",
        (message_id, rendered_hash, digest_id),
    )


async def hold(conn: Conn, digest_id: int, incident_id: str, chat_id: int, *, held: bool,
               own_at: float | None = None) -> None:
    """List the incident's card in the digest: held (no card of its own), or not (its card
    goes as queued: sent before the storm began, or, with `own_at`, given its own card by the
    storm's rule at that time)."""
    await conn.execute(
        "UPDATE cards SET digest_id = ?, held = ?, own_at = ? WHERE incident_id = ? "
        "AND chat_id = ?",
        (digest_id, int(held), own_at, incident_id, chat_id),
    )


async def release(conn: Conn, incident_id: str, chat_id: int, *, own_at: float | None) -> bool:
    """A held card gets its own card (by the storm's rule at `own_at`, or on request when
    None). False when it was not held."""
    cur = await conn.execute(
        "UPDATE cards SET held = 0, own_at = COALESCE(?, own_at) WHERE incident_id = ? "
        "AND chat_id = ? AND held = 1",
        (own_at, incident_id, chat_id),
    )
    return cur.rowcount == 1


async def own_cards_since(conn: Conn, chat_id: int, since: float) -> int:
    """Cards the storm's rule gave their own card in this chat after `since`."""
    row = await fetch_one(
        conn, "SELECT COUNT(*) FROM cards WHERE chat_id = ? AND own_at > ?", (chat_id, since))
    return int(row[0]) if row else 0


async def waiting_urgent(conn: Conn) -> list[DigestRow]:
    """Digests (during their storm or after it) with held incidents that should have their
    own card."""
    # Driven from the few urgent ones (partial indexes incidents_critical, decisions_risky),
    # not from the digest's held cards: the delivery worker asks at every look, and a storm
    # holds thousands (CROSS JOIN keeps SQLite's join order).
    rows = await fetch_all(
        conn,
        f"""SELECT d.* FROM digests d WHERE EXISTS (
                SELECT 1 FROM incidents i CROSS JOIN cards c
                WHERE lower(i.severity) = 'critical' AND i.status = 'firing'
                  AND c.incident_id = i.id AND c.chat_id = d.chat_id AND c.digest_id = d.id
                  AND c.held = 1)
            OR EXISTS (
                SELECT 1 FROM decisions x CROSS JOIN cards c CROSS JOIN incidents i
                WHERE {_RISKY} AND c.incident_id = x.incident_id AND c.chat_id = d.chat_id
                  AND c.digest_id = d.id AND c.held = 1 AND i.id = x.incident_id
                  AND i.status = 'firing')
            ORDER BY d.id""",
    )
    return [_digest(r) for r in rows]


async def urgent_held(conn: Conn, digest_id: int, limit: int) -> list[str]:
    """Held incidents of the digest that should have their own card, most severe first."""
    rows = await fetch_all(
        conn,
        f"""SELECT i.id FROM cards c JOIN incidents i ON i.id = c.incident_id
            WHERE c.digest_id = ? AND c.held = 1 AND i.status = 'firing' AND {_URGENT}
            ORDER BY lower(i.severity) = 'critical' DESC, i.opened_at, i.id LIMIT ?""",
        (digest_id, limit),
    )
    return [r[0] for r in rows]


async def entries(conn: Conn, digest_id: int) -> list[Entry]:
    rows = await fetch_all(
        conn,
        f"""SELECT i.id, i.title, i.alertname, i.namespace, i.severity, i.status, i.opened_at,
                   c.held AS c_held, c.message_id AS c_message_id, {_URGENT} AS c_urgent
            FROM cards c JOIN incidents i ON i.id = c.incident_id
            WHERE c.digest_id = ? ORDER BY i.opened_at, i.id""",
        (digest_id,),
    )
    return [Entry(Listed(r["id"], r["title"], r["alertname"], r["namespace"], r["severity"],
                         IncidentStatus(r["status"]), req_ts(r["opened_at"])),
                  bool(r["c_held"]), bool(r["c_urgent"]), r["c_message_id"])
            for r in rows]


async def digest_of_message(conn: Conn, chat_id: int, message_id: int) -> DigestRow | None:
    row = await fetch_one(
        conn, "SELECT * FROM digests WHERE chat_id = ? AND message_id = ?", (chat_id, message_id))
    return _digest(row) if row else None
