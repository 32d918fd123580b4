"""Card buttons, one handler per action. Each returns what bot/ says the press did;
in front of them handlers.middlewares.CardPressGuard decides who may press and
whether the press is fresh, and answers the press with the outcome."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.types import CallbackQuery

from bot.chat.authorization import IncidentAccess
from bot.chat.card_buttons import Inquiries
from bot.incidents.acks import AckService
from bot.incidents.approvals import ApprovalService, Outcome
from bot.models import Actor
from handlers.filters import ServedChat
from handlers.middlewares import CardPressGuard
from keyboards.callbacks import CardAct, CardCB


async def approve(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                  approvals: ApprovalService) -> Outcome:
    return await approvals.approve(actor, callback_data.inc, callback_data.dec)


async def reject(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                 approvals: ApprovalService) -> Outcome:
    return await approvals.reject(actor, callback_data.inc, callback_data.dec)


async def reanalyze(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                    approvals: ApprovalService) -> Outcome:
    return await approvals.reanalyze(actor, callback_data.inc, callback_data.dec)


async def silence(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                  approvals: ApprovalService, access: IncidentAccess) -> Outcome:
    chat_id = query.message.chat.id if query.message else 0
    scope = await access.silence_scope(chat_id, actor.user_id, callback_data.inc)
    # The route's labels alone select more than the silence will: if even they stay in
    # this chat, so does the silence, and Alertmanager may get its copy.
    return await approvals.silence_incident(actor, callback_data.inc, callback_data.dec,
                                            scope=scope,
                                            mirror=access.only_here(chat_id, scope or []))


async def save_playbook(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                        inquiries: Inquiries) -> Outcome:
    return await inquiries.save_playbook(actor, callback_data.inc, callback_data.dec)


async def ack(query: CallbackQuery, callback_data: CardCB, actor: Actor,
              acks: AckService) -> Outcome:
    assert query.message is not None
    return await acks.ack(actor, query.message.chat.id, query.message.message_id,
                          callback_data.inc)


async def unack(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                acks: AckService) -> Outcome:
    assert query.message is not None
    return await acks.unack(actor, query.message.chat.id, query.message.message_id,
                            callback_data.inc)


async def details(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                  inquiries: Inquiries) -> Outcome:
    return await inquiries.details(actor, callback_data.inc)


async def history(query: CallbackQuery, callback_data: CardCB, actor: Actor,
                  inquiries: Inquiries) -> Outcome:
    return await inquiries.history(actor, callback_data.inc)


# (handler, its action, the audit name of the action, does it change anything)
HANDLERS: tuple[tuple[Any, CardAct, str, bool], ...] = (
    (approve, CardAct.APPROVE, "approve", True),
    (reject, CardAct.REJECT, "reject", True),
    (reanalyze, CardAct.REANALYZE, "reanalyze", True),
    (silence, CardAct.SILENCE, "silence", True),
    (save_playbook, CardAct.PLAYBOOK, "save_playbook", True),
    (ack, CardAct.ACK, "ack", True),
    (unack, CardAct.UNACK, "unack", True),
    (details, CardAct.DETAILS, "details", False),
    (history, CardAct.HISTORY, "history", False),
)
# These change something but are not for approvers only: AckService decides who may press
# (ACK_BY: members of a chat the incident is in, or approvers; Unack: the acker or approvers).
OPEN_TO_MEMBERS = frozenset({CardAct.ACK, CardAct.UNACK})


def make_router() -> Router:
    """A fresh router per Dispatcher (several apps may share one process in tests)."""
    router = Router(name="card_buttons")
    router.callback_query.filter(ServedChat())
    router.callback_query.middleware(CardPressGuard())
    for handler, act, action, mutating in HANDLERS:
        router.callback_query.register(handler, CardCB.filter(F.act == act),
                                       flags={"action": action, "mutating": mutating,
                                              "approvers_only": act not in OPEN_TO_MEMBERS})
    return router
