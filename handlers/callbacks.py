"""Card buttons: answer at once, then let bot/ do the work."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery

from bot import texts
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import MUTATING, ApprovalService, Authorizer, Outcome
from bot.incidents.stale_press import StalePressRule
from handlers.actors import actor_of
from handlers.filters import ServedChat
from keyboards.callbacks import CardAct, CardCB

log = logging.getLogger(__name__)

ACTION_OF = {
    CardAct.APPROVE: "approve",
    CardAct.REJECT: "reject",
    CardAct.DETAILS: "details",
    CardAct.HISTORY: "history",
    CardAct.REANALYZE: "reanalyze",
    CardAct.SILENCE: "silence",
    CardAct.PLAYBOOK: "save_playbook",
}


async def _answer(query: CallbackQuery, locale: str, outcome: Outcome) -> bool:
    """Answer exactly once. False when Telegram says the query is too old."""
    text = texts.toast(outcome.toast, locale, **outcome.ctx)
    try:
        await query.answer(text=text, show_alert=outcome.alert)
    except TelegramBadRequest as exc:
        log.warning("could not answer callback %s: %s", query.id, exc.message)
        return "query is too old" not in exc.message
    return True


async def on_card_button(
    query: CallbackQuery, callback_data: CardCB, approvals: ApprovalService,
    authz: Authorizer, inquiries: Inquiries, stale_press: StalePressRule, locale: str,
    backlog: bool = False,
) -> None:
    assert query.message is not None
    chat_id = query.message.chat.id
    actor = actor_of(query.from_user, chat_id)
    action = ACTION_OF[callback_data.act]
    inc, dec = callback_data.inc, callback_data.dec
    svc = approvals

    if action in MUTATING:
        if stale_press.is_stale(backlog):
            # Queued while we were down: Telegram will not take an answer any more,
            # so the thread is the only way to tell the person.
            await _answer(query, locale, Outcome("working"))
            await svc.stale_press(actor, action, inc, dec)
            return
        if not await authz.is_approver(chat_id, actor.user_id):
            outcome = await svc.refuse(actor, action, inc, dec)
        elif action == "approve":
            outcome = await svc.approve(actor, inc, dec)
        elif action == "reject":
            outcome = await svc.reject(actor, inc, dec)
        elif action == "reanalyze":
            outcome = await svc.reanalyze(actor, inc, dec)
        elif action == "silence":
            outcome = await svc.silence_incident(actor, inc, dec)
        else:
            outcome = await inquiries.save_playbook(actor, inc, dec)
    elif action == "details":
        outcome = await inquiries.details(actor, inc)
    else:
        outcome = await inquiries.history(actor, inc)

    await _answer(query, locale, outcome)


async def on_unknown_button(query: CallbackQuery, inquiries: Inquiries, locale: str) -> None:
    """Buttons from an older format or another bot version."""
    await _answer(query, locale, Outcome("stale_card", alert=True))
    chat_id = query.message.chat.id if query.message else None
    await inquiries.record_press(actor_of(query.from_user, chat_id),
                                          "unknown_button", query.data or "")


async def on_foreign_chat_button(query: CallbackQuery) -> None:
    # Not a served chat: stop the spinner, do nothing else.
    try:
        await query.answer()
    except TelegramBadRequest:
        pass


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="callbacks")
    router.callback_query.register(on_card_button, CardCB.filter(), ServedChat())
    router.callback_query.register(on_unknown_button, ServedChat())
    router.callback_query.register(on_foreign_chat_button, F.id)
    return router
