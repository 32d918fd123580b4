"""Keeping one incident's card in one chat equal to its stored state: post it once,
then edit it in place, skipping edits whose rendered digest was already sent."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot.cards.card import Card
from bot.metrics import Metrics
from bot.telegram.failures import is_bad_url, is_edit_target_gone, is_not_modified
from bot.telegram.sending import NO_PREVIEW, Delivered, markup_of
from storage import repo
from storage.db import Database
from storage.repo.sql import Conn

log = logging.getLogger(__name__)


class CardRenderer(Protocol):
    """An incident's card for one chat from stored state; None if the incident is gone.
    Without `url_buttons` every link is shown as text instead of as a button."""

    async def __call__(self, incident_id: str, chat_id: int, *, url_buttons: bool = True
                       ) -> Card | None: ...


# A Bot API call that posts or edits a card, given its text and keyboard.
CardCall = Callable[[str, Any], Awaitable[Any]]


class Topics(Protocol):
    async def thread_for(self, incident_id: str, chat_id: int) -> int | None: ...
    async def close(self, incident_id: str, chat_id: int) -> None: ...


class CardSync:
    def __init__(self, db: Database, bot: Bot, render_card: CardRenderer,
                 topics: Topics | None, metrics: Metrics) -> None:
        self.db = db
        self.bot = bot
        self.render_card = render_card
        self.topics = topics
        self.metrics = metrics

    async def sync(self, incident_id: str, chat_id: int) -> Delivered:
        """What was done (the new message id when the card was posted), with what to store
        about it in the transaction that marks the outbox row sent."""
        async with self.db.read(inline=True) as conn:
            row = await repo.get_card(conn, incident_id, chat_id)
        if row is not None and row.held and row.message_id is None:
            return Delivered()  # a storm's digest shows it here instead
        card = await self.render_card(incident_id, chat_id)
        if card is None:
            return Delivered()
        if row is not None and row.message_id is not None:
            if row.last_rendered_hash == card.digest:
                self.metrics.delivered("identical_skipped")
                return Delivered()
            sent = card
            try:
                _, sent = await self._send_with_url_fallback(
                    lambda text, markup: self.bot.edit_message_text(
                        text=text, chat_id=chat_id, message_id=row.message_id,
                        reply_markup=markup, link_preview_options=NO_PREVIEW,
                    ),
                    incident_id, chat_id, card,
                )
                self.metrics.delivered("edited")
            except TelegramBadRequest as exc:
                if is_not_modified(exc):
                    self.metrics.delivered("not_modified")
                elif is_edit_target_gone(exc):
                    # Someone deleted the card: post a fresh one rather than go silent.
                    log.warning("card of %s is gone (%s); posting it again", incident_id, exc)
                    return await self._post(incident_id, chat_id, card, row)
                else:
                    raise
            message_id, thread_id, digest = row.message_id, row.message_thread_id, sent.digest

            async def record_edit(conn: Conn) -> None:
                await repo.save_card(conn, incident_id, chat_id, message_id=message_id,
                                     thread_id=thread_id, rendered_hash=digest)

            return Delivered(record=record_edit)
        return await self._post(incident_id, chat_id, card, row)

    async def _post(self, incident_id: str, chat_id: int, card: Card,
                    row: repo.CardRow | None) -> Delivered:
        thread_id = row.message_thread_id if row else None
        if thread_id is None and self.topics is not None:
            thread_id = await self.topics.thread_for(incident_id, chat_id)
        message, sent = await self._send_with_url_fallback(
            lambda text, markup: self.bot.send_message(
                chat_id=chat_id, text=text, reply_markup=markup,
                message_thread_id=thread_id, link_preview_options=NO_PREVIEW,
            ),
            incident_id, chat_id, card,
        )
        self.metrics.delivered("sent")
        message_id: int = message.message_id

        async def record_post(conn: Conn) -> None:
            # In the transaction that marks the row sent: from Telegram's answer on, a crash
            # can no longer leave the card posted but unknown (and post it a second time).
            await repo.save_card(conn, incident_id, chat_id, message_id=message_id,
                                 thread_id=thread_id, rendered_hash=sent.digest)

        return Delivered(sent_id=message_id, record=record_post)

    async def _send_with_url_fallback(self, call: CardCall, incident_id: str, chat_id: int,
                                      card: Card) -> tuple[Any, Card]:
        """The call's result and the card it sent: as rendered, or, when Telegram refuses
        a button URL, rendered again with every link as text (the link stays on the card)."""
        try:
            return await call(card.text, markup_of(card.keyboard)), card
        except TelegramBadRequest as exc:
            if not is_bad_url(exc):
                raise
            # One refused link must not cost the whole card.
            log.warning("Telegram refused a button URL (%s); sending the links as text", exc)
            self.metrics.delivered("url_fallback")
            plain = await self.render_card(incident_id, chat_id, url_buttons=False) or card
            return await call(plain.text, markup_of(plain.keyboard, urls=False)), plain
