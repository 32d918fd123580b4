"""Keeping one incident's card in one chat equal to its stored state: post it once,
then edit it in place, skipping edits whose rendered digest was already sent."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot.telegram.failures import is_bad_url, is_edit_target_gone, is_not_modified
from bot.telegram.sending import NO_PREVIEW, markup_of
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderedCard:
    text: str
    keyboard: list[list[dict[str, Any]]]
    digest: str


CardRenderer = Callable[[str, int], Awaitable[RenderedCard | None]]


class Topics(Protocol):
    async def thread_for(self, incident_id: str, chat_id: int) -> int | None: ...
    async def close(self, incident_id: str, chat_id: int) -> None: ...


class CardSync:
    def __init__(self, db: Database, bot: Bot, render_card: CardRenderer,
                 topics: Topics | None, metrics: Counter[str]) -> None:
        self.db = db
        self.bot = bot
        self.render_card = render_card
        self.topics = topics
        self.metrics = metrics

    async def sync(self, incident_id: str, chat_id: int) -> int | None:
        """The new message id when the card was posted; None when it was edited or skipped."""
        card = await self.render_card(incident_id, chat_id)
        if card is None:
            return None
        async with self.db.read() as conn:
            row = await repo.get_card(conn, incident_id, chat_id)
        if row is not None and row.message_id is not None:
            if row.last_rendered_hash == card.digest:
                self.metrics["identical_skipped"] += 1
                return None
            try:
                await self._send_with_url_fallback(
                    lambda markup: self.bot.edit_message_text(
                        text=card.text, chat_id=chat_id, message_id=row.message_id,
                        reply_markup=markup, link_preview_options=NO_PREVIEW,
                    ),
                    card.keyboard,
                )
                self.metrics["edited"] += 1
            except TelegramBadRequest as exc:
                if is_not_modified(exc):
                    self.metrics["not_modified"] += 1
                elif is_edit_target_gone(exc):
                    # Someone deleted the card: post a fresh one rather than go silent.
                    log.warning("card of %s is gone (%s); posting it again", incident_id, exc)
                    return await self._post(incident_id, chat_id, card)
                else:
                    raise
            async with self.db.write() as conn:
                await repo.save_card(
                    conn, incident_id, chat_id, message_id=row.message_id,
                    thread_id=row.message_thread_id, rendered_hash=card.digest,
                )
            return None
        return await self._post(incident_id, chat_id, card)

    async def _post(self, incident_id: str, chat_id: int, card: RenderedCard) -> int:
        async with self.db.read() as conn:
            row = await repo.get_card(conn, incident_id, chat_id)
        thread_id = row.message_thread_id if row else None
        if thread_id is None and self.topics is not None:
            thread_id = await self.topics.thread_for(incident_id, chat_id)
        message = await self._send_with_url_fallback(
            lambda markup: self.bot.send_message(
                chat_id=chat_id, text=card.text, reply_markup=markup,
                message_thread_id=thread_id, link_preview_options=NO_PREVIEW,
            ),
            card.keyboard,
        )
        self.metrics["sent"] += 1
        async with self.db.write() as conn:
            await repo.save_card(
                conn, incident_id, chat_id, message_id=message.message_id,
                thread_id=thread_id, rendered_hash=card.digest,
            )
        return message.message_id

    async def _send_with_url_fallback(self, call: Callable[[Any], Awaitable[Any]],
                                      keyboard: list[list[dict[str, Any]]]) -> Any:
        try:
            return await call(markup_of(keyboard))
        except TelegramBadRequest as exc:
            if not is_bad_url(exc):
                raise
            # One refused link must not cost the whole card.
            log.warning("Telegram refused a button URL (%s); sending without URL buttons", exc)
            self.metrics["url_fallback"] += 1
            return await call(markup_of(keyboard, urls=False))
