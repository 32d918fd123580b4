"""Silences made from the chat: stored in SQLite, mirrored to Alertmanager when set.

SQLite is the truth: when Alertmanager cannot be reached the silence still
works here, and the answer says it is local only.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot import audit
from bot.cards.notes import Voice
from bot.models import Actor, Matcher, Silence
from bot.silences import coverage
from bot.silences.alertmanager import AlertmanagerSilences, AlertmanagerUnavailable, RemoteSilence
from bot.silences.matching import group_matchers, silence_matches
from bot.silences.replies import render_silence_expired
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)


def new_silence_id() -> str:
    return "S-" + secrets.token_hex(3).upper()


@dataclass
class Created:
    silence: Silence
    open_matches: int
    am_status: str  # synced | local | shared | off


class SilenceService:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        locale: str,
        tz_name: str,
        alertmanager: AlertmanagerSilences | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.locale = locale
        self.tz_name = tz_name
        self.am = alertmanager

    async def group_matchers(self, incident_id: str) -> list[Matcher] | None:
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
        if inc is None:
            return None
        return group_matchers(inc.group_labels or {"alertname": inc.alertname})

    async def create(
        self,
        actor: Actor,
        chat_id: int | None,
        matchers: list[Matcher],
        ends_at: datetime,
        reason: str,
        *,
        incident_id: str | None = None,
        mirror: bool = True,
    ) -> Created:
        """Store the silence and quiet what it covers in its chat. `mirror`: also set it in
        Alertmanager (False when its alerts go to other chats too, which Alertmanager's copy
        would mute as well)."""
        now = self.clock()
        silence = Silence(
            id=new_silence_id(), matchers=matchers, reason=reason, created_by=actor.name,
            created_by_id=actor.user_id, starts_at=now, ends_at=ends_at, chat_id=chat_id,
        )
        voice = Voice(self.locale, self.tz_name)
        async with self.db.write() as conn:
            await repo.insert_silence(conn, silence)
            matched = 0
            active = await repo.active_silences(conn, now)
            # Made in a chat: it silences only incidents routed into that chat.
            for inc in await repo.open_incidents(conn, chat_id):
                labels = await repo.firing_labels(conn, inc.id)
                # Counted once here; ingest keeps the count from what each webhook changes.
                await repo.set_silence_misses(
                    conn, inc.id, silence.id,
                    sum(not silence_matches(silence, lb) for lb in labels))
                if not coverage.covering([silence], chat_id or 0, labels):
                    continue
                matched += 1
                await coverage.settle(conn, inc, now, voice, silences=active)
            await audit.record(
                conn, now, "silence", "created",
                actor=actor.model_copy(update={"chat_id": chat_id}), incident_id=incident_id,
                detail=f"{silence.id} until {ends_at.isoformat()}: "
                       + " ".join(f"{m.name}{'=~' if m.is_regex else '='}{m.value}"
                                  for m in matchers),
            )
        status = "off"
        if self.am is not None and not mirror:
            status = "shared"
        elif self.am is not None:
            try:
                am_id = await self.am.create(matchers, now, ends_at, actor.name,
                                             reason or f"opsgate {silence.id}")
            except AlertmanagerUnavailable as exc:
                log.warning("silence %s is local only: %s", silence.id, exc)
                status = "local"
            else:
                async with self.db.write() as conn:
                    await repo.set_silence_am_id(conn, silence.id, am_id)
                status = "synced"
        return Created(silence, matched, status)

    async def expire(self, actor: Actor | None, silence_id: str) -> Silence | None:
        """End a silence now. None when it is unknown or already over."""
        now = self.clock()
        async with self.db.write() as conn:
            silence = await repo.get_silence(conn, silence_id)
            if silence is None or not await repo.expire_silence(conn, silence_id, now):
                return None
            await self._lift(conn, silence, now)
            await audit.record(conn, now, "unsilence", "expired", actor=actor,
                               detail=silence_id)
            _, am_id = await repo.silence_extras(conn, silence_id)
        if self.am is not None and am_id:
            try:
                await self.am.expire(am_id)
            except AlertmanagerUnavailable as exc:
                log.warning("could not expire %s in Alertmanager: %s", silence_id, exc)
        return silence

    async def _lift(self, conn: repo.Conn, silence: Silence, now: datetime) -> None:
        """Incidents this silence kept quiet speak again, unless another still covers them."""
        voice = Voice(self.locale, self.tz_name)
        active = await repo.active_silences(conn, now)
        seen: set[str] = set()
        for card in await repo.cards_with_silence(conn, silence.id):
            if card.incident_id in seen:
                continue
            seen.add(card.incident_id)
            inc = await repo.get_incident(conn, card.incident_id)
            if inc is not None:
                await coverage.settle(conn, inc, now, voice, silences=active)

    async def active(self) -> tuple[list[Silence], list[RemoteSilence], str]:
        """Local active silences, those only Alertmanager knows, and the sync status."""
        now = self.clock()
        async with self.db.read() as conn:
            local = await repo.active_silences(conn, now)
            known = await repo.known_am_ids(conn)
        if self.am is None:
            return local, [], "off"
        try:
            remote = await self.am.list_active()
        except AlertmanagerUnavailable as exc:
            log.warning("cannot list Alertmanager silences: %s", exc)
            return local, [], "local"
        return local, [r for r in remote if r.id not in known], "synced"

    async def sweep(self) -> list[tuple[Silence, int | None]]:
        """Silences that ran out: lift them and return each once, with its chat."""
        now = self.clock()
        ended: list[tuple[Silence, int | None]] = []
        async with self.db.read() as conn:
            candidates = await repo.ended_unannounced(conn, now)
        for silence in candidates:
            async with self.db.write() as conn:
                if not await repo.mark_announced(conn, silence.id):
                    continue
                await self._lift(conn, silence, now)
                chat_id, _ = await repo.silence_extras(conn, silence.id)
                await audit.record(conn, now, "unsilence", "ended", detail=silence.id)
            ended.append((silence, chat_id))
        return ended


async def announce_ended_silences(silences: SilenceService,
                                  say: Callable[[int, str], Awaitable[None]],
                                  tz: ZoneInfo, locale: str) -> int:
    """Timer hook: say once, in the chat that made it, that a silence ended."""
    ended = await silences.sweep()
    for silence, chat_id in ended:
        if chat_id is None:
            continue
        text = render_silence_expired(silence, by=None, tz=tz, locale=locale)
        await say(chat_id, text)
    return len(ended)
