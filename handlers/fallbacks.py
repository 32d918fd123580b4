"""Presses no other handler is for: buttons we do not understand, and chats we do
not serve. Both are chosen by their own filters, so they work in any router order."""

from __future__ import annotations

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import Outcome
from handlers.actors import actor_of
from handlers.answering import answer
from handlers.filters import ServedChat, UnknownButton


async def unknown_button(query: CallbackQuery, inquiries: Inquiries, locale: str) -> None:
    """An older format, another bot's button, or data a client made up."""
    chat_id = query.message.chat.id if query.message else None
    # Recorded before the answer: whoever sees the toast can find the row.
    await inquiries.record_press(actor_of(query.from_user, chat_id), "unknown_button",
                                 query.data or "")
    await answer(query, locale, Outcome("unknown_button", alert=True))


async def foreign_chat_button(query: CallbackQuery) -> None:
    # Not a served chat: stop the spinner, do nothing else.
    try:
        await query.answer()
    except TelegramBadRequest:
        pass


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="fallbacks")
    router.callback_query.register(unknown_button, ServedChat(), UnknownButton())
    router.callback_query.register(foreign_chat_button, ~ServedChat())
    return router
