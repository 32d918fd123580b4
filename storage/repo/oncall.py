"""Acknowledgements (columns of incidents) and reminders (columns of cards).

Each change is a compare-and-set: of two presses, or two timer ticks, at once exactly
one sees a row count of one, so an ack is taken once and a reminder is sent once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.repo.sql import Conn, fetch_all, req_ts, ts

# Decision states in which nobody has decided yet: the reminders go on. An expired decision
# is one nobody decided on; no decision at all (the card is still being analysed) counts too.
UNDECIDED = ("analyzing", "pending", "invalid", "expired")


async def set_ack(conn: Conn, incident_id: str, user_id: int, name: str, now: datetime) -> bool:
    """Take the incident, if it still fires and nobody has it."""
    cur = await conn.execute(
        """UPDATE incidents SET acked_by_id = ?, acked_by = ?, acked_at = ?
           WHERE id = ? AND status = 'firing' AND acked_by_id IS NULL""",
        (user_id, name, ts(now), incident_id),
    )
    return cur.rowcount == 1


async def clear_ack(conn: Conn, incident_id: str, acked_by_id: int) -> bool:
    """Give the incident back, if `acked_by_id` still has it."""
    cur = await conn.execute(
        """UPDATE incidents SET acked_by_id = NULL, acked_by = NULL, acked_at = NULL
           WHERE id = ? AND acked_by_id = ?""",
        (incident_id, acked_by_id),
    )
    return cur.rowcount == 1


@dataclass(frozen=True)
class DueReminder:
    incident_id: str
    chat_id: int
    route_index: int
    message_id: int
    due_at: datetime
    reminders_sent: int
    thread_id: int | None = None  # the card's message_thread_id (forum topic), if any


# A card whose incident nobody reacted to: firing, not silenced, not acknowledged, not
# decided. The card must have been sent (a reminder replies to it); one that is not waits.
_NOBODY_REACTED = f"""
    c.message_id IS NOT NULL AND c.silence_id IS NULL
    AND c.incident_id IN (
        SELECT i.id FROM incidents i
        WHERE i.status = 'firing' AND i.acked_by_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.incident_id = i.id
                          AND d.state != 'superseded'
                          AND d.state NOT IN ({",".join(f"'{s}'" for s in UNDECIDED)})))"""


async def due_reminders(conn: Conn, now: datetime, limit: int = 100) -> list[DueReminder]:
    """Cards whose reminder is due and whose incident nobody reacted to, oldest first."""
    rows = await fetch_all(
        conn,
        f"""SELECT c.incident_id, c.chat_id, c.route_index, c.message_id, c.next_remind_at,
                   c.reminders_sent, c.message_thread_id
            FROM cards c
            WHERE c.next_remind_at IS NOT NULL AND c.next_remind_at <= ? AND {_NOBODY_REACTED}
            ORDER BY c.next_remind_at, c.rowid LIMIT ?""",
        (ts(now), limit),
    )
    return [
        DueReminder(r["incident_id"], r["chat_id"], r["route_index"], r["message_id"],
                    req_ts(r["next_remind_at"]), r["reminders_sent"], r["message_thread_id"])
        for r in rows
    ]


async def advance_reminder(
    conn: Conn, due: DueReminder, *, sent: int, next_at: datetime | None, escalated: bool,
    now: datetime,
) -> bool:
    """Record a reminder (or the escalation) as sent and when the next one is due. False,
    writing nothing, when another tick recorded it first or somebody reacted since."""
    cur = await conn.execute(
        f"""UPDATE cards AS c SET reminders_sent = ?, next_remind_at = ?,
               escalated_at = CASE WHEN ? = 1 THEN ? ELSE escalated_at END
            WHERE c.incident_id = ? AND c.chat_id = ? AND c.reminders_sent = ?
              AND c.next_remind_at = ? AND {_NOBODY_REACTED}""",
        (sent, ts(next_at), int(escalated), ts(now), due.incident_id, due.chat_id,
         due.reminders_sent, ts(due.due_at)),
    )
    return cur.rowcount == 1


async def reminder_cards(conn: Conn, incident_id: str) -> list[tuple[int, int]]:
    """(chat_id, route_index) of the incident's cards that still have reminders to send."""
    rows = await fetch_all(
        conn,
        "SELECT chat_id, route_index FROM cards WHERE incident_id = ? AND next_remind_at "
        "IS NOT NULL ORDER BY rowid",
        (incident_id,),
    )
    return [(r["chat_id"], r["route_index"]) for r in rows]


async def reschedule_reminder(conn: Conn, incident_id: str, chat_id: int, at: datetime) -> None:
    await conn.execute(
        """UPDATE cards SET next_remind_at = ?
           WHERE incident_id = ? AND chat_id = ? AND next_remind_at IS NOT NULL""",
        (ts(at), incident_id, chat_id),
    )


@dataclass(frozen=True)
class Unscheduled:
    """A card of a firing incident that never had a reminder scheduled: planned before
    reminders existed (schema 4), or while its route's remind_max was 0."""

    incident_id: str
    chat_id: int
    route_index: int
    opened_at: datetime


async def unscheduled_reminders(conn: Conn) -> list[Unscheduled]:
    rows = await fetch_all(
        conn,
        """SELECT c.incident_id, c.chat_id, c.route_index, i.opened_at
           FROM cards c JOIN incidents i ON i.id = c.incident_id
           WHERE i.status = 'firing' AND c.next_remind_at IS NULL AND c.reminders_sent = 0
             AND c.escalated_at IS NULL
           ORDER BY i.opened_at, c.rowid""",
    )
    return [Unscheduled(r["incident_id"], r["chat_id"], r["route_index"],
                        req_ts(r["opened_at"])) for r in rows]


async def schedule_first_reminder(conn: Conn, card: Unscheduled, route_index: int,
                                  at: datetime) -> bool:
    """Give an unscheduled card its first reminder; False when it got one meanwhile."""
    cur = await conn.execute(
        """UPDATE cards SET route_index = ?, next_remind_at = ?
           WHERE incident_id = ? AND chat_id = ? AND next_remind_at IS NULL
             AND reminders_sent = 0 AND escalated_at IS NULL""",
        (route_index, ts(at), card.incident_id, card.chat_id),
    )
    return cur.rowcount == 1
