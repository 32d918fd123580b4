"""Storm mode: when a chat's backlog of new cards would take longer than `STORM_BACKLOG` to
send at the chat's paced rate, its new incidents go into one digest message instead of a card
each, and the digest is edited in place as they come.

The delivery worker sweeps before each pass, from what is stored (so a restart or another
worker decides the same):
- a chat whose pending first cards would take too long keeps the oldest that fit in
  `STORM_BACKLOG`; the rest, and every new incident while the storm lasts, are held in the
  chat's digest (what was queued for them there is not sent);
- incidents of critical severity, and those whose decision waits for people at high or
  critical risk, still get their own card, at most `STORM_OWN_CARDS` per chat (count per
  window); the others wait, flagged at the top of the digest, for the next free turn (after
  the storm too);
- the storm ends when the cards it held back would all have been sent by now at the paced
  rate (each held incident pushes that time on by one card's interval); the digest then says
  so, with the totals, and new incidents get their own card again.

Sends notify; edits never do (Telegram notifies no one of an edited message), so the
digest's first post and each own card are what people hear.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot.cards.card import Card
from bot.models import severity_rank
from bot.telegram.failures import is_edit_target_gone, is_not_modified
from bot.telegram.pacing import Limits, Rate
from bot.telegram.sending import NO_PREVIEW, Delivered, markup_of
from storage import outbox
from storage.db import Database
from storage.repo import digests
from storage.repo.sql import Conn

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger(__name__)

DigestRenderer = Callable[[int], Awaitable[tuple[digests.DigestRow, Card] | None]]


@dataclass(frozen=True)
class StormPolicy:
    backlog: float  # seconds of new cards a chat may queue; 0: storm mode off
    own_cards: Rate  # own cards a chat gets during a storm, per window
    limits: Limits  # the pacer's: how fast a chat's cards go

    def interval(self, chat_id: int) -> float:
        """Seconds one new card takes at the chat's paced rate (the window new cards may
        use in a group, its bucket's refill; a private chat's bucket)."""
        lim = self.limits
        if chat_id > 0:
            return lim.private.per / lim.private.count
        window = lim.group.per / max(1, lim.group.count - lim.headroom)
        return max(window, lim.group_burst.per / lim.group_burst.count)


def storm_mode(db: Database, s: Settings, clock: Callable[[], datetime]) -> Storm | None:
    """Storm mode as the settings say: off with STORM_BACKLOG=0, and without pacing (no
    paced rate to measure a backlog by)."""
    backlog = s.storm_backlog.total_seconds()
    if backlog <= 0 or not s.telegram_pacing:
        return None
    return Storm(db, StormPolicy(backlog, Rate.parse(s.storm_own_cards),
                                 Limits.from_settings(s)), clock)


class Storm:
    def __init__(self, db: Database, policy: StormPolicy, clock: Callable[[], datetime]
                 ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    async def sweep(self) -> bool:
        """Hold, release and end what the stored state says; True if anything changed."""
        now = self.clock()
        async with self.db.read() as conn:
            if not await self._apply(conn, now, write=False):
                return False
        async with self.db.write() as conn:
            return await self._apply(conn, now, write=True)

    async def _apply(self, conn: Conn, now: datetime, *, write: bool) -> bool:
        """Look (and, with `write`, act): the same reads either way, so a read that finds
        nothing to do costs no write transaction."""
        at = now.timestamp()
        backlog: dict[int, list[digests.NewCard]] = {}
        for card in await digests.new_cards(conn):
            backlog.setdefault(card.chat_id, []).append(card)
        open_ = {d.chat_id: d for d in await digests.open_digests(conn)}
        changed = False
        for chat_id, cards in backlog.items():
            interval = self.policy.interval(chat_id)
            digest = open_.get(chat_id)
            if digest is None:
                if len(cards) * interval <= self.policy.backlog:
                    continue
                if not write:
                    return True
                keep = int(self.policy.backlog // interval)
                drain = at + len(cards) * interval
                digest_id = await digests.start_digest(conn, chat_id, now, drain)
                log.warning("storm in chat %s: %d new cards would take %.0fs; new incidents "
                            "go into one digest", chat_id, len(cards), len(cards) * interval)
                for card in cards[:keep]:  # the backlog that fits goes as queued
                    await digests.hold(conn, digest_id, card.incident_id, chat_id, held=False)
                cards = cards[keep:]
            else:
                if not write:
                    return True
                digest_id = digest.id
                drain = max(digest.drain_at, at) + len(cards) * interval
                await digests.set_drain_at(conn, digest_id, drain)
            showing = await self._hold(conn, digest_id, chat_id, cards, now)
            await outbox.enqueue_digest(conn, digest_id, chat_id, now, first=digest is None,
                                        showing=showing)
            changed = True
        for digest in await digests.waiting_urgent(conn):
            changed |= await self._release_urgent(conn, digest, now, write=write)
            if not write and changed:
                return True
        for digest in open_.values():
            if digest.drain_at <= at and digest.chat_id not in backlog:
                if not write:
                    return True
                await digests.end_digest(conn, digest.id, now)
                await outbox.enqueue_digest(conn, digest.id, digest.chat_id, now)
                log.warning("storm in chat %s is over", digest.chat_id)
                changed = True
        return changed

    async def _free_own_cards(self, conn: Conn, chat_id: int, at: float) -> int:
        cap = self.policy.own_cards
        return max(0, cap.count - await digests.own_cards_since(conn, chat_id, at - cap.per))

    async def _hold(self, conn: Conn, digest_id: int, chat_id: int,
                    cards: list[digests.NewCard], now: datetime) -> int | None:
        """List these incidents in the digest; critical ones keep their card while the
        cap allows. The severity rank of the most severe held (only the digest shows it),
        None if none is."""
        at = now.timestamp()
        free = await self._free_own_cards(conn, chat_id, at)
        showing: int | None = None
        for card in cards:
            own = free > 0 and card.severity.lower() == "critical"
            await digests.hold(conn, digest_id, card.incident_id, chat_id, held=not own,
                               own_at=at if own else None)
            if own:
                free -= 1
            else:
                await outbox.drop_held(conn, card.incident_id, chat_id)
                showing = max(showing or 0, severity_rank(card.severity))
        return showing

    async def _release_urgent(self, conn: Conn, digest: digests.DigestRow, now: datetime, *,
                              write: bool) -> bool:
        """Held incidents that should have their own card get it, while the cap allows."""
        free = await self._free_own_cards(conn, digest.chat_id, now.timestamp())
        if free <= 0:
            return False
        urgent = await digests.urgent_held(conn, digest.id, free)
        if not write or not urgent:
            return bool(urgent)
        for incident_id in urgent:
            await release_card(conn, incident_id, digest, now, own_at=now.timestamp())
        return True


async def release_card(conn: Conn, incident_id: str, digest: digests.DigestRow, now: datetime,
                       *, own_at: float | None) -> bool:
    """A held incident gets its own card in the digest's chat (by the storm's rule at
    `own_at`, or because someone asked); the digest shows that it has one."""
    if not await digests.release(conn, incident_id, digest.chat_id, own_at=own_at):
        return False
    # Critical or a risky decision (or someone asked: then the people lane).
    await outbox.enqueue(conn, kind=outbox.CARD, chat_id=digest.chat_id,
                         incident_id=incident_id, now=now,
                         lane=outbox.new_card_lane(severity_rank("critical")))
    await outbox.enqueue_digest(conn, digest.id, digest.chat_id, now)
    return True


class DigestSync:
    """Keeps a digest message equal to its stored state: posted once, then edited in place,
    skipping edits whose rendering was already sent."""

    def __init__(self, db: Database, bot: Bot, render: DigestRenderer) -> None:
        self.db = db
        self.bot = bot
        self.render = render

    async def sync(self, digest_id: int) -> Delivered:
        rendered = await self.render(digest_id)
        if rendered is None:
            return Delivered()
        digest, card = rendered
        markup = markup_of(card.keyboard)
        if digest.message_id is not None:
            if digest.last_rendered_hash == card.digest:
                return Delivered()
            message_id = digest.message_id
            try:
                await self.bot.edit_message_text(
                    text=card.text, chat_id=digest.chat_id, message_id=message_id,
                    reply_markup=markup, link_preview_options=NO_PREVIEW)
            except TelegramBadRequest as exc:
                if is_edit_target_gone(exc):
                    log.warning("digest %s is gone (%s); posting it again", digest_id, exc)
                    return await self._post(digest, card)
                if not is_not_modified(exc):
                    raise

            async def record_edit(conn: Conn) -> None:
                await digests.save_message(conn, digest_id, message_id, card.digest)

            return Delivered(record=record_edit)
        return await self._post(digest, card)

    async def _post(self, digest: digests.DigestRow, card: Card) -> Delivered:
        message = await self.bot.send_message(
            chat_id=digest.chat_id, text=card.text, reply_markup=markup_of(card.keyboard),
            link_preview_options=NO_PREVIEW)
        message_id: int = message.message_id

        async def record_post(conn: Conn) -> None:
            await digests.save_message(conn, digest.id, message_id, card.digest)

        return Delivered(sent_id=message_id, record=record_post)
