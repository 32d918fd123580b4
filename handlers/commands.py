"""Chat commands and replies. /start and /whoami answer anywhere (set-up help)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import cards
from bot.services import Services
from handlers.common import actor_of, display_name
from handlers.middlewares import ServedChat


async def whoami(message: Message, services: Services) -> None:
    user = message.from_user
    if user is None:
        return
    approver = await services.authz.is_approver(message.chat.id, user.id)
    text = cards.render_whoami(
        user_id=user.id, name=display_name(user), is_approver=approver,
        chat_id=message.chat.id, tz=services.settings.tz, locale=services.settings.locale,
    )
    await services.inquiries.say(message.chat.id, text, reply_to=message.message_id,
                                 thread_id=message.message_thread_id)
    services.delivery.kick()


async def start(message: Message, services: Services) -> None:
    text = cards.render_message(
        "commands/start.html", tz=services.settings.tz, locale=services.settings.locale,
        chat_id=message.chat.id,
    )
    await services.inquiries.say(message.chat.id, text, reply_to=message.message_id)
    services.delivery.kick()


async def reply_in_thread(message: Message, services: Services) -> None:
    """A reply to one of our thread messages may be a rejection reason."""
    if message.from_user is None or message.reply_to_message is None:
        return
    if message.text and message.text.startswith("/"):
        return
    actor = actor_of(message.from_user, message.chat.id)
    if await services.approvals.add_reason(
        actor, message.chat.id, message.reply_to_message.message_id, message.text or ""
    ):
        services.delivery.kick()


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="commands")
    router.message.register(whoami, Command("whoami"))
    router.message.register(start, CommandStart())
    router.message.register(reply_in_thread, ServedChat(), F.reply_to_message, F.text)
    return router
