"""Reminders that escalate: an incident nobody reacts to is brought up again.

Firing, not silenced, not acknowledged and not decided: after the route's REMIND_AFTER its
thread gets a reminder with an Ack button of its own, mentioning the route's on-call people
(else its approvers); again every REMIND_EVERY, REMIND_MAX in all; one REMIND_EVERY after the
last, the route's escalate_to people are mentioned once. Acknowledging, deciding, silencing
or resolving stops it (the due scan skips the incident).

Driven from the database: each card stores how many reminders went and when the next is due,
and the reminder's outbox row is written in the transaction that advances them. A restart
neither loses one (it is still due) nor repeats one (it is no longer due), and two ticks at
once send it once (compare-and-set on the count and the due time).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot import audit
from bot.cards import notes
from bot.cards.notes import Voice
from bot.models import OnCall, Person
from keyboards.incident import reminder_keyboard
from storage import outbox, repo
from storage.db import Database


def mentions(people: tuple[Person, ...]) -> list[dict[str, Any]]:
    return [{"username": p, "id": None} if isinstance(p, str) else {"username": None, "id": p}
            for p in people]


def _plain(people: tuple[Person, ...]) -> str:
    return ", ".join(f"@{p}" if isinstance(p, str) else str(p) for p in people)


class Reminders:
    def __init__(self, db: Database, on_call_at: Callable[[int, int], OnCall],
                 clock: Callable[[], datetime], voice: Voice) -> None:
        self.db = db
        self.on_call_at = on_call_at  # (route index, chat id) -> the card's route's settings
        self.clock = clock
        self.voice = voice

    async def sweep(self) -> int:
        """Send what is due now; returns how many reminders and escalations were queued."""
        now = self.clock()
        async with self.db.read() as conn:
            due = await repo.due_reminders(conn, now)
        queued = 0
        for item in due:
            async with self.db.write() as conn:
                queued += await self._one(conn, item, now)
        return queued

    async def _one(self, conn: repo.Conn, item: repo.DueReminder, now: datetime) -> int:
        route = self.on_call_at(item.route_index, item.chat_id)
        pace = route.pace
        inc = await repo.get_incident(conn, item.incident_id)
        assert inc is not None
        if item.reminders_sent < pace.max:
            number = item.reminders_sent + 1
            more = number < pace.max or bool(route.escalate_to)
            if not await repo.advance_reminder(
                conn, item, sent=number, next_at=now + pace.every if more else None,
                escalated=False, now=now,
            ):
                return 0
            people = route.reminded
            kind, result = "reminder", f"reminder {number}/{pace.max}"
            ctx: dict[str, Any] = {"number": number, "of": pace.max}
        else:
            # All reminders went (or REMIND_MAX was lowered since): escalate once, if anyone.
            if not await repo.advance_reminder(conn, item, sent=item.reminders_sent,
                                               next_at=None, escalated=bool(route.escalate_to),
                                               now=now):
                return 0
            if not route.escalate_to:
                return 0
            people = route.escalate_to
            kind, result = "escalation", "escalated"
            ctx = {"reminders": item.reminders_sent}
        text = notes.render(kind, self.voice, incident=inc, people=mentions(people), now=now,
                            **ctx)
        await outbox.enqueue(
            conn, kind=outbox.REPLY, chat_id=item.chat_id, incident_id=inc.id, now=now,
            payload={"text": text, "note": kind,
                     "keyboard": reminder_keyboard(inc.id, self.voice.locale)},
        )
        await audit.record(conn, now, "remind", result, incident_id=inc.id,
                           detail=f"chat {item.chat_id}: {_plain(people)}")
        return 1
