"""Which chats are served. Everything else is ignored (callbacks just get answered)."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.services import Services


class ServedChat(Filter):
    async def __call__(self, event: Message | CallbackQuery, services: Services) -> bool:
        if isinstance(event, CallbackQuery):
            chat = event.message.chat if event.message else None
        else:
            chat = event.chat
        return chat is not None and chat.id in services.served_chats()
