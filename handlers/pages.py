"""Buttons that page a message of ours in place: the pages of an incident's alerts under
its Details answer, and a storm's digest (its pages, and its buttons that open one
incident's own card)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from bot.chat.authorization import IncidentAccess, Pressed
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import Outcome
from bot.models import Actor
from handlers.actors import actor_of
from handlers.answering import answer
from handlers.filters import ServedChat, carries_button
from keyboards.callbacks import DetailsPageCB, DigestOpenCB, DigestPageCB


async def details_page(query: CallbackQuery, callback_data: DetailsPageCB,
                       access: IncidentAccess, inquiries: Inquiries, locale: str) -> None:
    """The press edits the message it is on, so that message must be this incident's
    Details page in this chat: Telegram's copy carries this very button (a card never
    does, so forged data cannot overwrite a card) and the message is the incident's."""
    assert query.message is not None
    chat_id, message_id = query.message.chat.id, query.message.message_id
    actor = actor_of(query.from_user, chat_id)
    if not carries_button(query):
        await inquiries.record_press(actor, "details_page", query.data or "",
                                     result="wrong_message")
        await answer(query, locale, Outcome("wrong_message", alert=True))
        return
    press = Pressed(actor, chat_id, message_id, "details_page", callback_data.inc, 0, True)
    refusal = await access.check_press(press, mutating=False)
    if refusal is not None:
        await answer(query, locale, refusal)
        return
    outcome = await inquiries.details_page(actor, chat_id, message_id, callback_data.inc,
                                           callback_data.at, backwards=callback_data.back)
    await answer(query, locale, outcome)


async def digest_page(query: CallbackQuery, callback_data: DigestPageCB,
                      inquiries: Inquiries, locale: str) -> None:
    outcome = await _on_the_digest(query, inquiries, "digest_page") or await (
        inquiries.digest_page(*_where(query), callback_data.dig, callback_data.page))
    await answer(query, locale, outcome)


async def open_card(query: CallbackQuery, callback_data: DigestOpenCB, inquiries: Inquiries,
                    locale: str) -> None:
    outcome = await _on_the_digest(query, inquiries, "open_card") or await (
        inquiries.open_card(*_where(query), callback_data.dig, callback_data.inc))
    await answer(query, locale, outcome)


def _where(query: CallbackQuery) -> tuple[Actor, int, int]:
    assert query.message is not None
    chat_id = query.message.chat.id
    return actor_of(query.from_user, chat_id), chat_id, query.message.message_id


async def _on_the_digest(query: CallbackQuery, inquiries: Inquiries, action: str
                         ) -> Outcome | None:
    """Telegram's copy of the pressed message must carry this very button (forged data
    carries none); bot/ then checks that the message is the digest the data names."""
    if carries_button(query):
        return None
    actor, _, _ = _where(query)
    await inquiries.record_press(actor, action, query.data or "", result="wrong_message")
    return Outcome("wrong_message", alert=True)


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="pages")
    router.callback_query.filter(ServedChat())
    router.callback_query.register(details_page, DetailsPageCB.filter())
    router.callback_query.register(digest_page, DigestPageCB.filter())
    router.callback_query.register(open_card, DigestOpenCB.filter())
    return router
