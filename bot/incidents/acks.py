"""Acknowledge ("I'm on it") and give back: who has an incident, and since when.

An acknowledgement is a property of the incident, not a decision state: it stops the
reminders, shows on the card and in /incidents, and says nothing about the action. Each
press is one compare-and-set with its audit row, card sync and thread note, in one write
transaction; a press that changes nothing still leaves an audit row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Literal

from bot import audit
from bot.cards import notes
from bot.cards.notes import Voice
from bot.incidents.approvals import Outcome
from bot.models import Actor, Incident, IncidentStatus, OnCall
from storage import outbox, repo
from storage.db import Database
from storage.repo import Conn
from storage.state import StateStore

log = logging.getLogger(__name__)

AckBy = Literal["anyone", "approvers"]
MemberLookup = Callable[[int, int], Awaitable[bool]]  # (chat_id, user_id) -> is a member
# (chat_id, user_id, incident_id) -> approves a route that brings this incident into this chat
# (bot.chat.authorization.IncidentAccess.may_act): an approver of another route, or of
# another chat, has no say over this incident here.
MayAct = Callable[[int, int, str], Awaitable[bool]]


class AckService:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        voice: Voice,
        may_act: MayAct,
        on_call_at: Callable[[int, int], OnCall],
        state: StateStore,
        *,
        ack_by: AckBy = "anyone",
        is_member: MemberLookup | None = None,
        member_ttl: float = 300.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.voice = voice
        self.may_act = may_act
        self.on_call_at = on_call_at  # (route index, chat id) -> the card's route's settings
        self.state = state
        self.ack_by = ack_by
        self.is_member = is_member
        self.member_ttl = member_ttl

    async def _member(self, chat_id: int, user_id: int) -> bool:
        """Whether the presser belongs to the chat: a public group shows its messages, and
        their buttons, to people who never joined."""
        if self.is_member is None:
            return False
        key = f"member:{chat_id}:{user_id}"
        cached = await self.state.get(key)
        if cached is not None:
            return bool(cached)
        try:
            member = await self.is_member(chat_id, user_id)
        except Exception as exc:  # a failed lookup must not grant anything
            log.warning("could not check membership of %s in chat %s: %s", user_id, chat_id, exc)
            return False
        await self.state.set(key, member, self.member_ttl)
        return member

    async def _may_ack(self, chat_id: int, user_id: int, incident_id: str) -> str | None:
        """None when the presser may acknowledge this incident in this chat, else the
        refusal."""
        if await self.may_act(chat_id, user_id, incident_id):
            return None
        if self.ack_by == "approvers":
            return "ack_not_allowed"
        return None if await self._member(chat_id, user_id) else "ack_not_member"

    async def _shown_here(self, conn: Conn, incident_id: str, chat_id: int,
                          message_id: int) -> Incident | str:
        """The incident, if the pressed message is its card or one of its thread messages
        in this chat (callback data is untrusted text: it may name any incident); else
        the refusal."""
        inc = await repo.get_incident(conn, incident_id)
        if inc is None or await repo.get_card(conn, incident_id, chat_id) is None:
            return "ack_not_here"
        card = await repo.card_by_message(conn, chat_id, message_id)
        sent = None if card else await outbox.sent_item(conn, chat_id, message_id)
        owner = card.incident_id if card else (sent.incident_id if sent else None)
        return inc if owner == incident_id else "wrong_message"

    async def _refuse(self, conn: Conn, now: datetime, actor: Actor, action: str,
                      incident_id: str, result: str, **ctx: object) -> Outcome:
        await audit.record(conn, now, action, result, actor=actor, incident_id=incident_id)
        return Outcome(result, dict(ctx), alert=True)

    async def ack(self, actor: Actor, chat_id: int, message_id: int, incident_id: str
                  ) -> Outcome:
        now = self.clock()
        refusal = await self._may_ack(chat_id, actor.user_id, incident_id)
        async with self.db.write() as conn:
            inc = await self._shown_here(conn, incident_id, chat_id, message_id)
            if isinstance(inc, str):
                return await self._refuse(conn, now, actor, "ack", incident_id, inc)
            if refusal is not None:
                return await self._refuse(conn, now, actor, "ack", incident_id, refusal)
            if inc.status is not IncidentStatus.FIRING:
                return await self._refuse(conn, now, actor, "ack", incident_id, "ack_resolved")
            if not await repo.set_ack(conn, inc.id, actor.user_id, actor.name, now):
                holder = await repo.get_incident(conn, inc.id)
                name = (holder.acked_by if holder else None) or "?"
                await audit.record(conn, now, "ack", "already_acked", actor=actor,
                                   incident_id=inc.id, detail=name)
                return Outcome("already_acked", {"name": name})
            await audit.record(conn, now, "ack", "acknowledged", actor=actor, incident_id=inc.id)
            await notes.card_changed(conn, inc, now)
            await notes.reply(conn, inc, "acked", now, self.voice, name=actor.name, at=now)
        return Outcome("acked")

    async def unack(self, actor: Actor, chat_id: int, message_id: int, incident_id: str
                    ) -> Outcome:
        """Give the incident back: the person who acknowledged it, or an approver."""
        now = self.clock()
        approver = await self.may_act(chat_id, actor.user_id, incident_id)
        async with self.db.write() as conn:
            inc = await self._shown_here(conn, incident_id, chat_id, message_id)
            if isinstance(inc, str):
                return await self._refuse(conn, now, actor, "unack", incident_id, inc)
            if inc.acked_by_id is None:
                await audit.record(conn, now, "unack", "not_acked", actor=actor,
                                   incident_id=inc.id)
                return Outcome("not_acked")
            holder = inc.acked_by or str(inc.acked_by_id)
            if inc.acked_by_id != actor.user_id and not approver:
                return await self._refuse(conn, now, actor, "unack", inc.id,
                                          "unack_not_allowed", name=holder)
            if not await repo.clear_ack(conn, inc.id, inc.acked_by_id):
                await audit.record(conn, now, "unack", "lost_race", actor=actor,
                                   incident_id=inc.id)
                return Outcome("not_acked")
            await audit.record(conn, now, "unack", "given_back", actor=actor, incident_id=inc.id,
                               detail=f"acknowledged by {holder}")
            # Nobody is on it again: reminders start over from REMIND_AFTER.
            for card_chat, index in await repo.reminder_cards(conn, inc.id):
                pace = self.on_call_at(index, card_chat).pace
                await repo.reschedule_reminder(conn, inc.id, card_chat, now + pace.after)
            await notes.card_changed(conn, inc, now)
            await notes.reply(conn, inc, "unacked", now, self.voice, name=actor.name,
                              holder=holder, at=now)
        return Outcome("unacked")
