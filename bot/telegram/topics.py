"""THREAD_MODE=topic: one forum topic per alert group, renamed and closed on resolve,
reopened (with a new card) when the group fires again. Called by delivery only."""

from __future__ import annotations

import html
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest

from bot import texts
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)

MAX_TOPIC_NAME = 128


class TopicManager:
    def __init__(self, db: Database, bot: Bot, topic_chats: frozenset[int], locale: str) -> None:
        self.db = db
        self.bot = bot
        self.topic_chats = topic_chats
        self.locale = locale

    def _name(self, incident: object, outcome: str | None = None) -> str:
        name = html.unescape(texts.render("topics/name.html", self.locale, incident=incident,
                                          outcome=outcome))
        return " ".join(name.split())[:MAX_TOPIC_NAME] or "incident"

    async def thread_for(self, incident_id: str, chat_id: int) -> int | None:
        """The topic a new card goes to: the group's, made or reopened as needed."""
        if chat_id not in self.topic_chats:
            return None
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            known = await repo.get_topic(conn, chat_id, inc.group_key) if inc else None
        if inc is None:
            return None
        name = self._name(inc)
        if known is None:
            topic = await self.bot.create_forum_topic(chat_id=chat_id, name=name)
            thread = topic.message_thread_id
        else:
            thread, closed = known
            if closed:
                await self.bot.reopen_forum_topic(chat_id=chat_id, message_thread_id=thread)
                await self._rename(chat_id, thread, name)
        async with self.db.write() as conn:
            await repo.save_topic(conn, chat_id, inc.group_key, thread, name)
            await repo.set_card_thread(conn, incident_id, chat_id, thread)
        return thread

    async def close(self, incident_id: str, chat_id: int) -> None:
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            card = await repo.get_card(conn, incident_id, chat_id)
            decision = await repo.current_decision(conn, incident_id)
        if inc is None or card is None or card.message_thread_id is None:
            return
        outcome = texts.render("topics/outcome.html", self.locale,
                               state=decision.state.value if decision else None)
        name = self._name(inc, outcome.strip())
        thread = card.message_thread_id
        await self._rename(chat_id, thread, name)
        try:
            await self.bot.close_forum_topic(chat_id=chat_id, message_thread_id=thread)
        except TelegramBadRequest as exc:
            if "TOPIC_NOT_MODIFIED" not in exc.message:
                raise
        async with self.db.write() as conn:
            await repo.save_topic(conn, chat_id, inc.group_key, thread, name, closed=True)

    async def _rename(self, chat_id: int, thread: int, name: str) -> None:
        try:
            await self.bot.edit_forum_topic(chat_id=chat_id, message_thread_id=thread, name=name)
        except TelegramBadRequest as exc:
            if "TOPIC_NOT_MODIFIED" not in exc.message:
                raise
