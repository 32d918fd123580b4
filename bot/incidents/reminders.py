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

In a storm one chat would get a reminder per incident at once: when more than REMIND_BATCH_OVER
are due for one chat in one pass, that chat gets one message listing them (links to their
cards) with each person mentioned once; it counts as a reminder (or the escalation) of every
incident it lists, written in one transaction with all of their advances.

Cards planned before reminders existed (or while their route's remind_max was 0) have no
schedule: `schedule_missing` gives them one at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import audit
from bot.cards import notes
from bot.cards.command_text import fit, view
from bot.cards.links import message_link
from bot.cards.notes import Voice
from bot.models import Incident, OnCall, Person
from keyboards.incident import reminder_keyboard
from storage import outbox, repo
from storage.db import Database

log = logging.getLogger(__name__)

# (chat_id, incident_id) -> the index of the route that brings the incident into the chat
# now, or None when none does (bot.chat.authorization.IncidentAccess.route_index_into).
RouteIndexOf = Callable[[int, str], Awaitable[int | None]]


def mentions(people: tuple[Person, ...]) -> list[dict[str, Any]]:
    return [{"username": p, "id": None} if isinstance(p, str) else {"username": None, "id": p}
            for p in people]


def _plain(people: tuple[Person, ...]) -> str:
    return ", ".join(f"@{p}" if isinstance(p, str) else str(p) for p in people)


@dataclass(frozen=True)
class Step:
    """What one due card's turn says, once its advance is recorded."""

    item: repo.DueReminder
    incident: Incident
    kind: str  # "reminder" | "escalation"
    people: tuple[Person, ...]
    result: str  # the audit result
    ctx: dict[str, Any]


class Reminders:
    def __init__(self, db: Database, on_call_at: Callable[[int, int], OnCall],
                 clock: Callable[[], datetime], voice: Voice, *, batch_over: int = 3) -> None:
        self.db = db
        self.on_call_at = on_call_at  # (route index, chat id) -> the card's route's settings
        self.clock = clock
        self.voice = voice
        self.batch_over = batch_over  # more due at once in one chat: one message for them

    async def sweep(self) -> int:
        """Send what is due now; returns how many reminders and escalations were queued
        (a batch message counts once per incident it lists)."""
        now = self.clock()
        async with self.db.read() as conn:
            due = await repo.due_reminders(conn, now, limit=1000)
        by_chat: dict[int, list[repo.DueReminder]] = {}
        for item in due:
            by_chat.setdefault(item.chat_id, []).append(item)
        queued = 0
        for chat_id, items in by_chat.items():
            if len(items) > self.batch_over:
                async with self.db.write() as conn:
                    queued += await self._batch(conn, chat_id, items, now)
                continue
            for item in items:
                async with self.db.write() as conn:
                    queued += await self._one(conn, item, now)
        return queued

    async def _advance(self, conn: repo.Conn, item: repo.DueReminder, now: datetime
                       ) -> Step | None:
        """Record this card's next reminder (or its escalation) as sent; None when there is
        nothing to say (another tick was first, somebody reacted, nobody to escalate to)."""
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
                return None
            return Step(item, inc, "reminder", route.reminded, f"reminder {number}/{pace.max}",
                        {"number": number, "of": pace.max})
        # All reminders went (or REMIND_MAX was lowered since): escalate once, if anyone.
        if not await repo.advance_reminder(conn, item, sent=item.reminders_sent,
                                           next_at=None, escalated=bool(route.escalate_to),
                                           now=now):
            return None
        if not route.escalate_to:
            return None
        return Step(item, inc, "escalation", route.escalate_to, "escalated",
                    {"reminders": item.reminders_sent})

    async def _one(self, conn: repo.Conn, item: repo.DueReminder, now: datetime) -> int:
        step = await self._advance(conn, item, now)
        if step is None:
            return 0
        inc = step.incident
        text = notes.render(step.kind, self.voice, incident=inc, people=mentions(step.people),
                            now=now, **step.ctx)
        await outbox.enqueue(
            conn, kind=outbox.REPLY, chat_id=item.chat_id, incident_id=inc.id, now=now,
            payload={"text": text, "note": step.kind,
                     "keyboard": reminder_keyboard(inc.id, self.voice.locale)},
        )
        await audit.record(conn, now, "remind", step.result, incident_id=inc.id,
                           detail=f"chat {item.chat_id}: {_plain(step.people)}")
        return 1

    async def _batch(self, conn: repo.Conn, chat_id: int, items: list[repo.DueReminder],
                     now: datetime) -> int:
        steps = [s for item in items if (s := await self._advance(conn, item, now))]
        if not steps:
            return 0
        reminded = tuple(dict.fromkeys(p for s in steps if s.kind == "reminder"
                                       for p in s.people))
        escalated = tuple(dict.fromkeys(p for s in steps if s.kind == "escalation"
                                        for p in s.people))
        rows = [{"incident": s.incident, "kind": s.kind, **s.ctx,
                 "link": message_link(chat_id, s.item.message_id, s.item.thread_id) or ""}
                for s in steps]
        tz = ZoneInfo(self.voice.tz_name)
        text = fit(lambda lim, n: view(
            "reminder_batch", self.voice.locale, tz, lim, rows=rows[:n], more=len(rows) - n,
            total=len(rows), people=mentions(reminded), escalate=mentions(escalated),
            escalations=sum(s.kind == "escalation" for s in steps),
        ), total=len(rows), caps=(30, 20, 12))
        threads = {s.item.thread_id for s in steps}
        # A message cannot be in two forum topics: with cards in several it goes to the
        # chat's general topic, each line linking to its card.
        thread = threads.pop() if len(threads) == 1 else None
        await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=chat_id, now=now,
                             payload={"text": text, "note": "reminder_batch",
                                      "thread_id": thread})
        for s in steps:
            await audit.record(conn, now, "remind", s.result, incident_id=s.incident.id,
                               detail=f"chat {chat_id}: in one message for {len(steps)} "
                                      f"incidents: {_plain(s.people)}")
        return len(steps)

    async def schedule_missing(self, route_index_of: RouteIndexOf) -> int:
        """At start-up: every card of a firing incident that never had a reminder scheduled
        gets one, REMIND_AFTER (of the route that brings it there now) after the incident
        opened, or at the first tick if that is past. Returns how many were scheduled."""
        now = self.clock()
        async with self.db.read() as conn:
            cards = await repo.unscheduled_reminders(conn)
        scheduled = 0
        for card in cards:
            index = await route_index_of(card.chat_id, card.incident_id)
            index = card.route_index if index is None else index
            pace = self.on_call_at(index, card.chat_id).pace
            if pace.max == 0:
                continue
            async with self.db.write() as conn:
                scheduled += await repo.schedule_first_reminder(
                    conn, card, index, max(card.opened_at + pace.after, now))
        if scheduled:
            log.info("scheduled reminders for %d card(s) of open incidents that had none",
                     scheduled)
        return scheduled
