"""The inbox: Telegram updates recorded before Telegram is told they were received.

Polling confirms a batch to Telegram only by asking for the next offset, and the webhook
answers 200 only after the commit, so an update is either here or still at Telegram. The
inbox worker then hands each pending row to the Dispatcher and marks it done; a crash in
between leaves it pending, and the next start hands it over again (the handlers act by
compare-and-set, so a second hand-over never acts twice).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage.db import Wake, mark
from storage.repo.sql import Conn, fetch_all, fetch_one, req_ts, ts

# Telegram's own limits keep an update far below this (4096-character texts, 100 buttons);
# a body above it is not Telegram's, or not one any handler could use.
MAX_BODY_BYTES = 256 * 1024
MAX_UPDATE_ID = 2**63 - 1  # what SQLite's INTEGER holds
MAX_ERROR_CHARS = 500
# Telegram numbers updates on from a random id after a week without any: an id handled
# longer ago than this is a new update, not a repeat (and retention deletes such rows).
REUSED_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Received:
    """One update as it arrived: its id, its JSON object, and since when it may have waited."""

    update_id: int
    body: dict[str, Any]
    queued_since: datetime


@dataclass(frozen=True)
class InboxRow:
    update_id: int
    body: dict[str, Any]
    received_at: datetime
    queued_since: datetime


def valid_update_id(value: object) -> int | None:
    """The update_id of an update, if it is one SQLite can key on."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_UPDATE_ID:
        return value
    return None


async def record(conn: Conn, updates: Sequence[Received], now: datetime) -> list[InboxRow]:
    """Store a batch (one transaction: the caller's). An update already recorded is kept as
    it is: Telegram sends it again when it was never confirmed. Returns the new rows left
    pending, as `pending` would read them once this commits (an oversized update is new
    but kept as failed)."""
    new = 0
    stored: list[InboxRow] = []
    for update in updates:
        # ASCII escapes: a lone surrogate in a text stays storable (and is Telegram's to judge).
        body = json.dumps(update.body, ensure_ascii=True, separators=(",", ":"))
        state, error = "pending", None
        if len(body) > MAX_BODY_BYTES:
            body, state, error = "{}", "failed", f"update of {len(body)} bytes not kept"
        cur = await conn.execute(
            """INSERT INTO inbox (update_id, body, received_at, queued_since, state, last_error,
                   handled_at)
               VALUES (?,?,?,?,?,?,?)
               ON CONFLICT (update_id) DO UPDATE SET body = excluded.body,
                   received_at = excluded.received_at, queued_since = excluded.queued_since,
                   state = excluded.state, last_error = excluded.last_error,
                   handled_at = excluded.handled_at
               WHERE inbox.state <> 'pending' AND inbox.received_at < ?""",
            (update.update_id, body, ts(now), ts(update.queued_since), state, error,
             ts(now) if state == "failed" else None, ts(now - REUSED_AFTER)),
        )
        if cur.rowcount > 0:
            new += 1
            if state == "pending":
                stored.append(InboxRow(update.update_id, update.body, now, update.queued_since))
    if new:
        mark(conn, Wake.INBOX)
    return stored


async def pending(conn: Conn, after: int = -1, limit: int = 100) -> list[InboxRow]:
    """Pending updates with an id above `after`, oldest first."""
    rows = await fetch_all(
        conn,
        """SELECT update_id, body, received_at, queued_since FROM inbox
           WHERE state = 'pending' AND update_id > ? ORDER BY update_id LIMIT ?""",
        (after, limit),
    )
    return [
        InboxRow(update_id=r["update_id"], body=json.loads(r["body"]),
                 received_at=req_ts(r["received_at"]), queued_since=req_ts(r["queued_since"]))
        for r in rows
    ]


async def mark_done(conn: Conn, update_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE inbox SET state = 'done', handled_at = ? WHERE update_id = ? AND state = 'pending'",
        (ts(now), update_id),
    )


async def mark_failed(conn: Conn, update_id: int, now: datetime, error: str) -> None:
    """Its handler raised: kept with the error for inspection, never handed over again."""
    await conn.execute(
        """UPDATE inbox SET state = 'failed', handled_at = ?, last_error = ?
           WHERE update_id = ? AND state = 'pending'""",
        (ts(now), error[:MAX_ERROR_CHARS], update_id),
    )


async def pending_count(conn: Conn) -> int:
    row = await fetch_one(conn, "SELECT COUNT(*) FROM inbox WHERE state = 'pending'")
    return int(row[0]) if row else 0


async def counts(conn: Conn) -> dict[str, int]:
    rows = await fetch_all(conn, "SELECT state, COUNT(*) FROM inbox GROUP BY state")
    return {row[0]: row[1] for row in rows}


async def handled_before(conn: Conn, before: datetime, limit: int) -> list[int]:
    rows = await fetch_all(
        conn,
        """SELECT update_id FROM inbox WHERE state <> 'pending' AND handled_at < ?
           ORDER BY update_id LIMIT ?""",
        (ts(before), limit),
    )
    return [row[0] for row in rows]


async def delete(conn: Conn, update_ids: Sequence[int]) -> int:
    if not update_ids:
        return 0
    marks = ",".join("?" * len(update_ids))
    cur = await conn.execute(f"DELETE FROM inbox WHERE update_id IN ({marks})",
                             tuple(update_ids))
    return max(cur.rowcount, 0)
