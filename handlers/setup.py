"""Set-up help and chat migration: /start and /whoami answer in any chat, so a new
group can find its id and a person their user id before the routes name them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot.cards import card as cards
from bot.chat.answers import Answer
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import Authorizer
from bot.telegram.chat_migration import ChatMigrator
from handlers.actors import display_name
from handlers.answering import reply
from handlers.filters import ServedChat


async def whoami(message: Message, authz: Authorizer, inquiries: Inquiries, tz: ZoneInfo,
                 locale: str) -> None:
    user = message.from_user
    if user is None:
        return
    approver = await authz.is_approver(message.chat.id, user.id)
    text = cards.render_whoami(
        user_id=user.id, name=display_name(user), is_approver=approver,
        chat_id=message.chat.id, tz=tz, locale=locale,
    )
    await reply(message, inquiries, Answer(text))


async def start(message: Message, inquiries: Inquiries, tz: ZoneInfo, locale: str) -> None:
    text = cards.render_message("commands/start.html", tz=tz, locale=locale,
                                chat_id=message.chat.id)
    await reply(message, inquiries, Answer(text))


async def migrated(message: Message, migrator: ChatMigrator) -> None:
    """Service message in the old group: it is a supergroup now."""
    if message.migrate_to_chat_id:
        await migrator.migrate(message.chat.id, message.migrate_to_chat_id)


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="setup")
    router.message.register(whoami, Command("whoami"))
    router.message.register(start, CommandStart())
    # Served chats only: a migration is recorded (and reloaded at every start) and
    # announced in the new chat, which must not happen for a group we do not serve.
    router.message.register(migrated, F.migrate_to_chat_id, ServedChat())
    return router
