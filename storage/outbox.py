"""The outbox: Telegram writes waiting to be made, in order per incident, in lanes.

A row is written in the same transaction as the state change it reports, so
nothing is announced that was not stored, and nothing stored goes unannounced
after a crash.

Lanes (lower goes first): what people wait for (answers, and card edits and thread notes
caused by a press or a command), then new cards (higher severity first), then edits nobody
asked for. A row queued in a better lane lifts the rows queued before it for the same
incident, so per-incident order holds and still nothing waits behind the backlog.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.db import Wake, mark, someone_waiting
from storage.db import people_waiting as people_waiting  # around a press, a command, a run
from storage.repo.sql import Conn, fetch_one, ts

CARD = "card"  # render the incident's card now and send or edit it
REPLY = "reply"  # a message in the incident's thread (reply to its card)
MESSAGE = "message"  # a plain message to a chat (command answers, notes)
EDIT = "edit"  # edit a plain message we sent (paged lists)
TOPIC_CLOSE = "topic_close"  # rename the incident's forum topic with the outcome, close it
COMMANDS = "commands"  # setMyCommands for one scope
DIGEST = "digest"  # render a storm's digest now and send or edit it

PEOPLE = 0  # someone is waiting: a command's answer, the edit and note after a press
NEW_CARDS = 10  # a new incident's first card: NEW_CARDS - severity rank (0 info .. 3 critical)
BACKGROUND = 20  # edits nobody asked for: analysis results, alert updates, timers
DIGEST_FIRST = 5  # a storm digest's first post: it shows every incident the cards cannot


def new_card_lane(severity_rank: int) -> int:
    return NEW_CARDS - max(0, min(severity_rank, NEW_CARDS - PEOPLE - 1))


@dataclass(frozen=True)
class OutboxItem:
    id: int
    order_key: str
    incident_id: str | None
    chat_id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    queued_at: float = 0.0  # unix time the row was written
    lane: int = BACKGROUND


async def enqueue(
    conn: Conn,
    *,
    kind: str,
    chat_id: int,
    now: datetime,
    incident_id: str | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
    lane: int = BACKGROUND,
) -> int | None:
    """Queue a write in `lane` (PEOPLE while someone is waiting, whatever the caller said),
    sent no earlier than `not_before` when given. Card syncs collapse: one pending sync per
    card is enough, because the worker renders the latest state when it gets there (a
    collapsed sync keeps the pending row's wait). A sync already being sent does not count:
    it may have rendered older state.

    A row queued without a wait behind waiting rows of the same order key ends their wait:
    per-key order holds them ahead of it, and it is not to wait for what they wait for."""
    lane = _lane(lane)
    order_key = incident_id or f"chat:{chat_id}"
    await _lift(conn, order_key, lane)
    if kind == CARD:
        async with conn.execute(
            # order_key too: a card's rows are keyed by their incident, and it is what
            # lets the planner use the index of pending rows.
            """SELECT id FROM outbox WHERE state = 'pending' AND order_key = ? AND kind = 'card'
               AND incident_id = ? AND chat_id = ?""",
            (order_key, incident_id, chat_id),
        ) as cur:
            if await cur.fetchone():
                return None
    if not_before is None:
        await end_wait(conn, order_key)
    row = await fetch_one(
        conn,
        """INSERT INTO outbox (order_key, incident_id, chat_id, kind, payload, next_attempt_at,
               created_at, not_before, lane)
           VALUES (?,?,?,?,?,?,?,?,?) RETURNING id""",
        (
            order_key, incident_id, chat_id, kind,
            json.dumps(payload or {}, ensure_ascii=False), now.timestamp(), ts(now),
            not_before.timestamp() if not_before is not None else None, lane,
        ),
    )
    mark(conn, Wake.DELIVERY)
    return int(row[0]) if row is not None else None


def _lane(lane: int) -> int:
    return PEOPLE if someone_waiting() else lane


async def _lift(conn: Conn, order_key: str, lane: int) -> None:
    """Whatever is queued before a row of `order_key` goes first, so it goes no later than
    that row's lane: a press's card edit does not wait behind a backlog edit."""
    await conn.execute(
        "UPDATE outbox SET lane = ? WHERE state = 'pending' AND order_key = ? AND lane > ?",
        (lane, order_key, lane),
    )


def digest_key(digest_id: int) -> str:
    return f"digest:{digest_id}"


async def enqueue_digest(conn: Conn, digest_id: int, chat_id: int, now: datetime, *,
                         first: bool = False, showing: int | None = None,
                         settle: float = 0.0) -> None:
    """Queue a render of a storm's digest. Like card syncs they collapse: the worker renders
    the latest state when it gets there. The `first` post goes ahead of the chat's backlog of
    new cards: it is what shows every incident of the storm at once. A later render that
    lists incidents no message shows yet (`showing`: the severity rank of the most severe)
    goes first in the lane their own cards would have taken: ahead of the cards the storm
    kept from before it (which the digest lists already), behind more severe new cards.
    Other renders wait in the lowest new-cards lane, `settle` seconds from now when none is
    queued (the changes meanwhile join that render); one without `settle` is due now."""
    key = digest_key(digest_id)
    ahead = first or showing is not None
    lane = _lane(DIGEST_FIRST if first else new_card_lane(showing or 0))
    at = now.timestamp()
    await _lift(conn, key, lane)
    async with conn.execute(
        "SELECT 1 FROM outbox WHERE state = 'pending' AND order_key = ? AND kind = 'digest'",
        (key,),
    ) as cur:
        if await cur.fetchone():
            if ahead or not settle:  # the render already queued shows it: due now (or first)
                due = 0.0 if ahead else at
                await conn.execute(  # the earlier time (SQLite's MIN(a, b) is not PostgreSQL's)
                    """UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending'
                       AND order_key = ? AND kind = 'digest' AND last_error IS NULL
                       AND next_attempt_at > ?""",
                    (due, key, due),
                )
            return
    await conn.execute(
        """INSERT INTO outbox (order_key, chat_id, kind, payload, next_attempt_at, created_at,
               lane)
           VALUES (?,?,?,?,?,?,?)""",
        (key, chat_id, DIGEST, json.dumps({"digest": digest_id}),
         0.0 if ahead else at + settle, ts(now), lane),
    )
    mark(conn, Wake.DELIVERY)


async def drop_held(conn: Conn, incident_id: str, chat_id: int) -> int:
    """A storm's digest holds this incident in this chat: what was queued for it there is not
    sent (the digest shows it instead). Marked done, with the reason."""
    cur = await conn.execute(
        """UPDATE outbox SET state = 'done', last_error = 'held in the storm digest'
           WHERE state = 'pending' AND order_key = ? AND chat_id = ?""",
        (incident_id, chat_id),
    )
    return cur.rowcount


async def end_wait(conn: Conn, order_key: str) -> None:
    """The key's rows that wait for their not-before time are due now (what they waited
    for has happened)."""
    cur = await conn.execute(
        """UPDATE outbox SET not_before = NULL
           WHERE state = 'pending' AND order_key = ? AND not_before IS NOT NULL""",
        (order_key,),
    )
    if cur.rowcount:
        mark(conn, Wake.DELIVERY)


# The head of each order key's queue: a row waiting for its retry or its not-before time
# holds back later rows of the same key, never other keys.
_HEADS = """FROM outbox o
           WHERE o.state = 'pending'
             AND o.id = (SELECT MIN(id) FROM outbox p
                         WHERE p.state IN ('pending', 'sending')
                           AND p.order_key = o.order_key)"""
# (Two-argument MAX is SQLite's; CASE is both dialects'.)
_GOES_AT = """CASE WHEN o.not_before > o.next_attempt_at THEN o.not_before
                   ELSE o.next_attempt_at END"""


async def card_in_flight(conn: Conn, incident_id: str, chat_id: int) -> bool:
    """Whether the incident's card in this chat is being sent right now."""
    async with conn.execute(
        """SELECT 1 FROM outbox WHERE state = 'sending' AND order_key = ? AND kind = 'card'
               AND chat_id = ?""",
        (incident_id, chat_id),
    ) as cur:
        return await cur.fetchone() is not None


@dataclass(frozen=True)
class Blocked:
    """Chats whose rows may not go now, left out of `due` so the rows that may go are found
    behind a backlog that may not: `held` (a 429: nothing goes), `paced` (pacing: nothing
    but setMyCommands, which writes to no chat) and `paced_unhurried` (pacing, except for
    the lane people wait for)."""

    held: frozenset[int] = frozenset()
    paced: frozenset[int] = frozenset()
    paced_unhurried: frozenset[int] = frozenset()


def _not_blocked(blocked: Blocked) -> tuple[str, list[int]]:
    parts, args = [], []
    chat_writes = " AND o.kind <> 'commands'"
    for chats, lanes in ((blocked.held, ""), (blocked.paced, chat_writes),
                         (blocked.paced_unhurried, f"{chat_writes} AND o.lane > {PEOPLE}")):
        if chats:
            parts.append(f" AND NOT (o.chat_id IN ({','.join('?' * len(chats))}){lanes})")
            args += sorted(chats)
    return "".join(parts), args


async def due(conn: Conn, now: float, limit: int = 50, blocked: Blocked = Blocked()
              ) -> list[OutboxItem]:
    """The head of each order key's queue, if it is due and its chat not `blocked`, best
    lane first."""
    not_blocked, args = _not_blocked(blocked)
    async with conn.execute(
        f"""SELECT o.* {_HEADS} AND {_GOES_AT} <= ?{not_blocked}
           ORDER BY o.lane, o.next_attempt_at, o.id LIMIT ?""",
        (now, *args, limit),
    ) as cur:
        rows = await cur.fetchall()
    return [_item(r) for r in rows]


async def claim(conn: Conn, item_id: int) -> bool:
    """Take a row for sending; another worker (or process) that got it first wins."""
    cur = await conn.execute(
        "UPDATE outbox SET state = 'sending' WHERE id = ? AND state = 'pending'", (item_id,)
    )
    return cur.rowcount == 1


async def release_stuck(conn: Conn) -> int:
    """At start-up: rows left 'sending' by a crash go again (sends are at-least-once)."""
    cur = await conn.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'")
    return cur.rowcount


async def release(conn: Conn, item_id: int, error: str) -> None:
    """A row whose call was cut short (a stop that could not wait): it goes again. A row
    whose result was recorded meanwhile stays as recorded."""
    await conn.execute(
        "UPDATE outbox SET state = 'pending', last_error = ? WHERE id = ? AND state = 'sending'",
        (error[:500], item_id),
    )


@dataclass(frozen=True)
class NextDue:
    """When the first head of a queue may go, and whether that is a not-before time."""

    at: float
    waiting: bool


async def next_due(conn: Conn) -> NextDue | None:
    """The earliest time a head of a queue may go (rows behind a head wait for it, so their
    own times do not count: a row behind a retry is no reason to look again now)."""
    async with conn.execute(
        f"""SELECT {_GOES_AT} AS at, COALESCE(o.not_before, 0) > o.next_attempt_at {_HEADS}
           ORDER BY at LIMIT 1"""
    ) as cur:
        row = await cur.fetchone()
    return NextDue(float(row[0]), bool(row[1])) if row else None


@dataclass(frozen=True)
class Writes:
    """What one attempt at a row wrote to its chat: how many writes, the last one at `at`."""

    count: int = 0
    at: float | None = None


_NOTE_WRITES = "sent_at = COALESCE(?, sent_at), writes = writes + ?"


async def mark_done(conn: Conn, item_id: int, sent_message_id: int | None = None,
                    writes: Writes = Writes()) -> None:
    await conn.execute(
        f"""UPDATE outbox SET state = 'done', last_error = NULL, sent_message_id = ?,
               {_NOTE_WRITES}
           WHERE id = ?""",
        (sent_message_id, writes.at, writes.count, item_id),
    )


async def recent_writes(conn: Conn, since: float) -> list[tuple[int, float, int]]:
    """(chat id, sent at, writes) of rows that wrote to a chat after `since` (unix time)."""
    async with conn.execute(
        "SELECT chat_id, sent_at, writes FROM outbox WHERE sent_at > ? AND writes > 0",
        (since,),
    ) as cur:
        return [(int(r[0]), float(r[1]), int(r[2])) for r in await cur.fetchall()]


async def sent_item(conn: Conn, chat_id: int, message_id: int) -> OutboxItem | None:
    """The outbox row that produced a message we sent (to route replies to it)."""
    async with conn.execute(
        "SELECT * FROM outbox WHERE chat_id = ? AND sent_message_id = ?", (chat_id, message_id)
    ) as cur:
        r = await cur.fetchone()
    if r is None:
        return None
    return _item(r)


def _item(r: Any) -> OutboxItem:
    return OutboxItem(
        id=r["id"], order_key=r["order_key"], incident_id=r["incident_id"],
        chat_id=r["chat_id"], kind=r["kind"], payload=json.loads(r["payload"]),
        attempts=r["attempts"], queued_at=datetime.fromisoformat(r["created_at"]).timestamp(),
        lane=r["lane"],
    )


async def retry_later(conn: Conn, item_id: int, at: float, error: str,
                      writes: Writes = Writes()) -> None:
    await conn.execute(
        f"""UPDATE outbox SET state = 'pending', attempts = attempts + 1, next_attempt_at = ?,
               last_error = ?, {_NOTE_WRITES}
           WHERE id = ?""",
        (at, error[:500], writes.at, writes.count, item_id),
    )


async def park(conn: Conn, item_id: int, error: str, writes: Writes = Writes()) -> None:
    await conn.execute(
        f"""UPDATE outbox SET state = 'parked', attempts = attempts + 1, last_error = ?,
               {_NOTE_WRITES}
           WHERE id = ?""",
        (error[:500], writes.at, writes.count, item_id),
    )


async def counts(conn: Conn) -> dict[str, int]:
    async with conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state") as cur:
        return {row[0]: row[1] for row in await cur.fetchall()}


async def oldest_unsent_at(conn: Conn) -> datetime | None:
    """When the oldest row still waiting to be sent was queued (times are UTC ISO text,
    so the smallest string is the earliest)."""
    async with conn.execute(
        "SELECT MIN(created_at) FROM outbox WHERE state IN ('pending', 'sending')"
    ) as cur:
        row = await cur.fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


async def pending_count(conn: Conn) -> int:
    async with conn.execute(
        "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
    ) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def prune_done(conn: Conn, keep: int = 10000) -> None:
    await conn.execute(
        "DELETE FROM outbox WHERE state = 'done' AND id < (SELECT MAX(id) FROM outbox) - ?",
        (keep,),
    )
