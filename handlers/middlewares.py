"""The guard in front of every card button: who pressed, may they, is the press fresh.

An inner middleware of the card router: it runs after a handler's CallbackData filter
matched, so it knows the action; the handlers below it only carry the action out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, TelegramObject

from bot.incidents.approvals import ApprovalService, Authorizer, Outcome
from bot.incidents.stale_press import StalePressRule
from handlers.actors import actor_of
from handlers.answering import answer
from keyboards.callbacks import CardCB

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class CardPressGuard(BaseMiddleware):
    """Handlers flagged `action` name what the press does (for the audit row); flagged
    `mutating` they need a fresh press and, unless flagged `approvers_only` false, an
    approver. A handler returns the Outcome the press is answered with."""

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        assert isinstance(event, CallbackQuery) and event.message is not None
        callback: CardCB = data["callback_data"]
        actor = actor_of(event.from_user, event.message.chat.id)
        data["actor"] = actor
        if not get_flag(data, "mutating"):
            return await self._carry_out(handler, event, data)
        action: str = get_flag(data, "action")
        approvals: ApprovalService = data["approvals"]
        authz: Authorizer = data["authz"]
        locale: str = data["locale"]
        if get_flag(data, "approvers_only", default=True) and not await authz.is_approver(
            event.message.chat.id, actor.user_id
        ):
            refusal = await approvals.refuse(actor, action, callback.inc, callback.dec)
            await answer(event, locale, refusal)
            return None
        stale_press: StalePressRule = data["stale_press"]
        if stale_press.is_stale(data.get("backlog", False)):
            # Queued while we were down: Telegram will not take an answer any more,
            # so the thread is the only way to tell the person.
            await answer(event, locale, Outcome("working"))
            await approvals.stale_press(actor, action, callback.inc, callback.dec)
            return None
        return await self._carry_out(handler, event, data)

    @staticmethod
    async def _carry_out(handler: Handler, event: CallbackQuery, data: dict[str, Any]) -> None:
        outcome: Outcome = await handler(event, data)
        await answer(event, data["locale"], outcome)
