"""Chat commands and replies. /start and /whoami answer anywhere (set-up help);
everything else only in served chats. aiogram's Command filter accepts
`/cmd@this_bot` and ignores commands addressed to other bots."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message

from bot import texts
from bot.cards import card as cards
from bot.chat.answers import Answer, Console
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import ApprovalService, Authorizer
from bot.models import Actor
from bot.telegram.chat_migration import ChatMigrator
from handlers.actors import actor_of, display_name
from handlers.filters import ServedChat
from keyboards.callbacks import HistoryPageCB, SilenceCB


async def _reply(message: Message, inquiries: Inquiries,
                 answer: Answer) -> None:
    await inquiries.say(
        message.chat.id, answer.text, reply_to=message.message_id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        keyboard=answer.keyboard,
    )


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
    await _reply(message, inquiries, Answer(text))


async def start(message: Message, inquiries: Inquiries,
                tz: ZoneInfo, locale: str) -> None:
    text = cards.render_message("commands/start.html", tz=tz, locale=locale,
                                chat_id=message.chat.id)
    await _reply(message, inquiries, Answer(text))


def _actor(message: Message) -> Actor:
    assert message.from_user is not None
    return actor_of(message.from_user, message.chat.id)


async def help_(message: Message, console: Console, inquiries: Inquiries) -> None:
    await _reply(message, inquiries, await console.help(_actor(message)))


async def silence(message: Message, command: CommandObject, console: Console,
                  inquiries: Inquiries) -> None:
    answer = await console.silence(_actor(message), command.args)
    await _reply(message, inquiries, answer)


async def silences(message: Message, console: Console, inquiries: Inquiries) -> None:
    await _reply(message, inquiries, await console.list_silences(_actor(message)))


async def unsilence(message: Message, command: CommandObject, console: Console,
                    inquiries: Inquiries) -> None:
    await _reply(message, inquiries,
                 await console.unsilence(_actor(message), command.args))


async def history(message: Message, command: CommandObject, console: Console,
                  inquiries: Inquiries) -> None:
    await _reply(message, inquiries, await console.history(command.args))


async def incidents(message: Message, console: Console, inquiries: Inquiries) -> None:
    await _reply(message, inquiries, await console.incidents(message.chat.id))


async def history_page(query: CallbackQuery, callback_data: HistoryPageCB, console: Console,
                       inquiries: Inquiries, locale: str) -> None:
    await _answer(query, locale, "working")
    if query.message is None:
        return
    answer = await console.history_page(callback_data.query or None,
                                        max(1, min(50, callback_data.n)), callback_data.page)
    await inquiries.edit(query.message.chat.id, query.message.message_id,
                         answer.text, answer.keyboard)


async def expire_silence(query: CallbackQuery, callback_data: SilenceCB, console: Console,
                         inquiries: Inquiries, locale: str) -> None:
    assert query.message is not None
    actor = actor_of(query.from_user, query.message.chat.id)
    answer = await console.expire_button(actor, callback_data.sid)
    await _answer(query, locale, answer.toast or "working",
                  alert=answer.toast == "not_allowed", user_id=actor.user_id)
    if answer.text:
        await inquiries.edit(query.message.chat.id, query.message.message_id,
                             answer.text, answer.keyboard)


async def _answer(query: CallbackQuery, locale: str, key: str, *, alert: bool = False,
                  **ctx: object) -> None:
    try:
        await query.answer(texts.toast(key, locale, **ctx), show_alert=alert)
    except TelegramBadRequest:
        pass


async def migrated(message: Message, migrator: ChatMigrator) -> None:
    """Service message in the old group: it is a supergroup now."""
    if message.migrate_to_chat_id:
        await migrator.migrate(message.chat.id, message.migrate_to_chat_id)


async def reply_in_thread(message: Message, approvals: ApprovalService) -> None:
    """A reply to one of our thread messages may be a rejection reason."""
    if message.from_user is None or message.reply_to_message is None:
        return
    if message.text and message.text.startswith("/"):
        return
    actor = actor_of(message.from_user, message.chat.id)
    await approvals.add_reason(
        actor, message.chat.id, message.reply_to_message.message_id, message.text or ""
    )


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="commands")
    served = ServedChat()
    router.message.register(whoami, Command("whoami"))
    router.message.register(start, CommandStart())
    router.message.register(migrated, F.migrate_to_chat_id, served)
    router.message.register(help_, Command("help"), served)
    router.message.register(silence, Command("silence"), served)
    router.message.register(silences, Command("silences"), served)
    router.message.register(unsilence, Command("unsilence"), served)
    router.message.register(history, Command("history"), served)
    router.message.register(incidents, Command("incidents"), served)
    router.message.register(reply_in_thread, served, F.reply_to_message, F.text)
    router.callback_query.register(history_page, HistoryPageCB.filter(), served)
    router.callback_query.register(expire_silence, SilenceCB.filter(), served)
    return router
