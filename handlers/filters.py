"""Which chats are served: only the chats the routes name. Everything else is ignored
(a button pressed there just gets its spinner stopped)."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.alerts.routing import RouteTable


class ServedChat(Filter):
    async def __call__(self, event: Message | CallbackQuery, routes: RouteTable) -> bool:
        if isinstance(event, CallbackQuery):
            chat = event.message.chat if event.message else None
        else:
            chat = event.chat
        return chat is not None and chat.id in routes.chats()
