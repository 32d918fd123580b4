"""Router filters: which chats are served, and which buttons no handler understands."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.alerts.routing import RouteTable
from keyboards.callbacks import KNOWN_CALLBACKS


class ServedChat(Filter):
    """Only the chats the routes name (`~ServedChat()` matches everything else)."""

    async def __call__(self, event: Message | CallbackQuery, routes: RouteTable) -> bool:
        if isinstance(event, CallbackQuery):
            chat = event.message.chat if event.message else None
        else:
            chat = event.chat
        return chat is not None and chat.id in routes.chats()


def carries_button(query: CallbackQuery) -> bool:
    """Whether Telegram's copy of the pressed message carries a button with exactly this
    data: the bot put it there (forged data carries none)."""
    markup = getattr(query.message, "reply_markup", None) if query.message else None
    return markup is not None and any(
        button.callback_data == query.data for row in markup.inline_keyboard for button in row)


class UnknownButton(Filter):
    """Callback data that none of our factories parses (an older format, another bot,
    a forged or damaged press). Matching on the data itself, not on "no handler took
    it", keeps the catch-all independent of the order routers are included in."""

    async def __call__(self, query: CallbackQuery) -> bool:
        data = query.data or ""
        for factory in KNOWN_CALLBACKS:
            try:
                factory.unpack(data)
            except (TypeError, ValueError):
                continue
            return False
        return True
