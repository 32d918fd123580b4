"""The group chat as the team's console: what each command answers.

Every method returns an Answer (Telegram HTML + keyboard); handlers only parse
the update and queue the answer through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from bot import audit, texts
from bot.cards.links import message_link
from bot.chat import history, open_incidents
from bot.chat.authorization import IncidentAccess
from bot.chat.commands import render_help, render_not_allowed, render_usage
from bot.command_args import ArgsError, error_text
from bot.models import Actor
from bot.silences import replies as silence_replies
from bot.silences.arguments import (
    SILENCE_USAGE,
    UNSILENCE_USAGE,
    parse_silence_args,
    parse_unsilence_args,
)
from bot.silences.service import SilenceService
from storage import repo
from storage.db import Database


@dataclass
class Answer:
    text: str
    keyboard: list[list[dict]] = field(default_factory=list)
    toast: str | None = None  # for button presses
    alert: bool = False  # the toast is a refusal: shown as a modal the presser must close


class Console:
    def __init__(
        self,
        db: Database,
        access: IncidentAccess,
        silences: SilenceService,
        tz: ZoneInfo,
        locale: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.access = access
        self.authz = access.authz
        self.silences = silences
        self.tz = tz
        self.locale = locale
        self.clock = clock

    def _usage(self, usage: str, error: str | None) -> Answer:
        return Answer(render_usage(usage, error=error, tz=self.tz, locale=self.locale))

    def _not_allowed(self, actor: Actor) -> Answer:
        return Answer(render_not_allowed(user_id=actor.user_id, tz=self.tz,
                                               locale=self.locale))

    async def help(self, actor: Actor) -> Answer:
        approver = await self.authz.is_approver(actor.chat_id or 0, actor.user_id)
        return Answer(render_help(is_approver=approver, tz=self.tz, locale=self.locale))

    async def silence(self, actor: Actor, args: str | None) -> Answer:
        chat_id = actor.chat_id or 0
        if not await self.authz.is_approver(chat_id, actor.user_id):
            await audit.write(self.db, self.clock(), "silence", "not_allowed", actor=actor)
            return self._not_allowed(actor)
        now = self.clock()
        try:
            parsed = parse_silence_args(args, now, self.tz)
        except ArgsError as exc:
            return self._usage(SILENCE_USAGE, error_text(exc, self.locale))
        matchers = parsed.matchers
        if parsed.incident_id:
            # Only an incident routed here can be named here.
            found = (await self.silences.group_matchers(parsed.incident_id)
                     if await self.access.is_routed_here(chat_id, parsed.incident_id) else None)
            if not found:
                await audit.write(self.db, now, "silence", "unknown_incident", actor=actor,
                                  detail=parsed.incident_id)
                unknown = texts.plain(texts.render("commands/unknown_incident.html", self.locale,
                                                   incident_id=parsed.incident_id))
                return self._usage(SILENCE_USAGE, unknown)
            matchers = found
        scope = await self.access.silence_scope(chat_id, actor.user_id, parsed.incident_id)
        if scope is None:
            await audit.write(self.db, now, "silence", "ambiguous_scope", actor=actor)
            return self._usage(SILENCE_USAGE, texts.plain(texts.render(
                "commands/silence_scope.html", self.locale)))
        matchers = [*matchers, *(m for m in scope if m not in matchers)]
        created = await self.silences.create(
            actor, actor.chat_id, matchers, parsed.ends_at, parsed.reason,
            incident_id=parsed.incident_id, mirror=self.access.only_here(chat_id, matchers),
        )
        return Answer(silence_replies.render_silence_created(
            created.silence, open_matches=created.open_matches, am_status=created.am_status,
            tz=self.tz, locale=self.locale, now=now,
        ))

    async def list_silences(self, actor: Actor) -> Answer:
        local, remote, _ = await self.silences.active()
        local = await self.access.silences_made_here(actor.chat_id or 0, local)
        remote = self.access.remote_within(actor.chat_id or 0, remote)
        can_expire = await self.authz.is_approver(actor.chat_id or 0, actor.user_id)
        text, keyboard = silence_replies.render_silence_list(
            local, remote, can_expire=can_expire, tz=self.tz, locale=self.locale,
            now=self.clock(),
        )
        return Answer(text, keyboard)

    async def unsilence(self, actor: Actor, args: str | None) -> Answer:
        if not await self.authz.is_approver(actor.chat_id or 0, actor.user_id):
            await audit.write(self.db, self.clock(), "unsilence", "not_allowed", actor=actor)
            return self._not_allowed(actor)
        try:
            sid = parse_unsilence_args(args)
        except ArgsError as exc:
            return self._usage(UNSILENCE_USAGE, error_text(exc, self.locale))
        if not await self.access.may_expire(actor.chat_id or 0, actor.user_id, sid):
            await audit.write(self.db, self.clock(), "unsilence", "not_allowed", actor=actor,
                              detail=sid)
            return self._not_allowed(actor)
        return await self._expire(actor, sid)

    async def expire_button(self, actor: Actor, sid: str) -> Answer:
        """The Expire button under /silences: answer, and the refreshed list."""
        if not await self.access.may_expire(actor.chat_id or 0, actor.user_id, sid):
            await audit.write(self.db, self.clock(), "unsilence", "not_allowed", actor=actor,
                              detail=sid)
            # About silences, not approvals: the button is under /silences, not on a card.
            return Answer("", toast="silence_not_allowed", alert=True)
        done = await self._expire(actor, sid)
        listing = await self.list_silences(actor)
        listing.toast = done.toast
        return listing

    async def _expire(self, actor: Actor, sid: str) -> Answer:
        silence = await self.silences.expire(actor, sid)
        if silence is None:
            unknown = silence_replies.render_unknown_silence(sid, tz=self.tz, locale=self.locale)
            return Answer(unknown, toast="unknown_silence")
        expired = silence_replies.render_silence_expired(silence, by=actor.name, tz=self.tz,
                                                         locale=self.locale)
        return Answer(expired, toast="silence_expired")

    async def history(self, chat_id: int, args: str | None, page: int = 0) -> Answer:
        try:
            parsed = history.parse_history_args(args)
        except ArgsError as exc:
            return self._usage(history.HISTORY_USAGE, error_text(exc, self.locale))
        return await self.history_page(chat_id, parsed.query, parsed.limit, page)

    async def history_page(self, chat_id: int, query: str | None, per_page: int,
                           page: int) -> Answer:
        """The incidents routed into this chat, newest first."""
        text, keyboard = await history.search_page(self.db, query, per_page, page, tz=self.tz,
                                                   locale=self.locale, chat_id=chat_id)
        return Answer(text, keyboard)

    async def incidents(self, chat_id: int) -> Answer:
        async with self.db.read() as conn:
            rows = []
            for inc in await repo.open_incidents(conn, chat_id):
                card = await repo.get_card(conn, inc.id, chat_id)
                link = None
                if card is not None and card.message_id is not None:
                    link = message_link(chat_id, card.message_id,
                                                       card.message_thread_id)
                quiet = card.silence_id if card else None
                silence = await repo.get_silence(conn, quiet) if quiet else None
                rows.append(open_incidents.OpenIncidentRow.of(
                    inc, await repo.current_decision(conn, inc.id), silence, link,
                ))
        return Answer(open_incidents.render_incidents(rows, tz=self.tz, locale=self.locale))
