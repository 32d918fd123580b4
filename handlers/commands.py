"""Commands of served chats, the buttons under their answers, and replies in a
thread. aiogram's Command filter accepts `/cmd@this_bot` and ignores commands
addressed to other bots."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.chat.answers import Console
from bot.chat.authorization import IncidentAccess
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import ApprovalService, Outcome
from bot.models import Actor
from handlers.actors import actor_of
from handlers.answering import answer, reply
from handlers.filters import ServedChat, carries_button
from keyboards.callbacks import HistoryPageCB, SilenceCB


def _actor(message: Message) -> Actor:
    assert message.from_user is not None
    return actor_of(message.from_user, message.chat.id)


async def help_(message: Message, console: Console, inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.help(_actor(message)))


async def silence(message: Message, command: CommandObject, console: Console,
                  inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.silence(_actor(message), command.args))


async def silences(message: Message, console: Console, inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.list_silences(_actor(message)))


async def unsilence(message: Message, command: CommandObject, console: Console,
                    inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.unsilence(_actor(message), command.args))


async def history(message: Message, command: CommandObject, console: Console,
                  inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.history(message.chat.id, command.args))


async def incidents(message: Message, console: Console, inquiries: Inquiries) -> None:
    await reply(message, inquiries, await console.incidents(message.chat.id))


async def history_page(query: CallbackQuery, callback_data: HistoryPageCB, console: Console,
                       access: IncidentAccess, inquiries: Inquiries, locale: str) -> None:
    assert query.message is not None
    chat_id, message_id = query.message.chat.id, query.message.message_id
    if not await _on_a_list(query, access, inquiries, locale, "history_page"):
        return
    await answer(query, locale, "working")
    page = await console.history_page(chat_id, callback_data.query or None, callback_data.n,
                                      callback_data.page)
    await inquiries.edit(chat_id, message_id, page.text, page.keyboard)


async def expire_silence(query: CallbackQuery, callback_data: SilenceCB, console: Console,
                         access: IncidentAccess, inquiries: Inquiries, locale: str) -> None:
    assert query.message is not None
    if not await _on_a_list(query, access, inquiries, locale, "unsilence"):
        return
    actor = actor_of(query.from_user, query.message.chat.id)
    done = await console.expire_button(actor, callback_data.sid)
    toast = done.toast or "working"
    await answer(query, locale, Outcome(toast, {"user_id": actor.user_id}, alert=done.alert))
    if done.text:
        await inquiries.edit(query.message.chat.id, query.message.message_id, done.text,
                             done.keyboard)


async def _on_a_list(query: CallbackQuery, access: IncidentAccess, inquiries: Inquiries,
                     locale: str, action: str) -> bool:
    """List buttons edit the message they are on. Telegram's copy of the pressed message must
    carry this very button (forged data carries none), and it must not be an incident's
    message (forged list data on a card would otherwise overwrite the card)."""
    assert query.message is not None
    if carries_button(query) and await access.incident_of_message(query.message.chat.id,
                                                    query.message.message_id) is None:
        return True
    await inquiries.record_press(actor_of(query.from_user, query.message.chat.id), action,
                                 query.data or "", result="wrong_message")
    await answer(query, locale, Outcome("wrong_message", alert=True))
    return False


async def reply_in_thread(message: Message, approvals: ApprovalService) -> None:
    """A reply to one of our thread messages may be a rejection reason."""
    if message.from_user is None or message.reply_to_message is None:
        return
    actor = actor_of(message.from_user, message.chat.id)
    await approvals.add_reason(
        actor, message.chat.id, message.reply_to_message.message_id, message.text or ""
    )


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="commands")
    router.message.filter(ServedChat())
    router.callback_query.filter(ServedChat())
    router.message.register(help_, Command("help"))
    router.message.register(silence, Command("silence"))
    router.message.register(silences, Command("silences"))
    router.message.register(unsilence, Command("unsilence"))
    router.message.register(history, Command("history"))
    router.message.register(incidents, Command("incidents"))
    # A command sent as a reply is a command (handled by its own router), not a reason.
    router.message.register(reply_in_thread, F.reply_to_message, F.text,
                            ~F.text.startswith("/"))
    router.callback_query.register(history_page, HistoryPageCB.filter())
    router.callback_query.register(expire_silence, SilenceCB.filter())
    return router
