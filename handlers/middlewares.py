"""The guard in front of every card button: is the press about the message it was made
on, may this person do it there, is it fresh.

An inner middleware of the card router: it runs after a handler's CallbackData filter
matched, so it knows the action; the handlers below it only carry the action out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.flags import get_flag
from aiogram.types import CallbackQuery, TelegramObject

from bot.chat.authorization import IncidentAccess, Pressed
from bot.incidents.approvals import ApprovalService, Outcome
from bot.incidents.stale_press import StalePressRule
from handlers.actors import actor_of
from handlers.answering import answer
from handlers.filters import carries_button
from keyboards.callbacks import CardCB
from storage.db import wakes_held

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class CardPressGuard(BaseMiddleware):
    """Handlers flagged `action` name what the press does (for the audit row); flagged
    `mutating` they need a fresh press and, unless flagged `approvers_only` false, the
    rights of a route that brings the incident into this chat (otherwise the service
    decides who may press). A handler returns the Outcome the press is answered with."""

    async def __call__(self, handler: Handler, event: TelegramObject,
                       data: dict[str, Any]) -> Any:
        # The workers a press's commits concern (delivery, for the card) start once the
        # press is answered.
        with wakes_held():
            return await self._guard(handler, event, data)

    async def _guard(self, handler: Handler, event: TelegramObject,
                     data: dict[str, Any]) -> Any:
        assert isinstance(event, CallbackQuery) and event.message is not None
        callback: CardCB = data["callback_data"]
        chat_id = event.message.chat.id
        actor = actor_of(event.from_user, chat_id)
        data["actor"] = actor
        action: str = get_flag(data, "action")
        mutating = bool(get_flag(data, "mutating"))
        locale: str = data["locale"]
        access: IncidentAccess = data["access"]
        press = Pressed(actor, chat_id, event.message.message_id, action, callback.inc,
                        callback.dec, carries_button(event))
        needs_rights = mutating and bool(get_flag(data, "approvers_only", default=True))
        refusal = await access.check_press(press, mutating=needs_rights)
        if refusal is not None:
            await answer(event, locale, refusal)
            return None
        stale_press: StalePressRule = data["stale_press"]
        # update_age: set by the inbox worker that hands the update over.
        if mutating and stale_press.is_stale(data.get("update_age", timedelta(0))):
            # Queued while we were down: Telegram will not take an answer any more,
            # so the thread is the only way to tell the person.
            await answer(event, locale, Outcome("working"))
            approvals: ApprovalService = data["approvals"]
            await approvals.stale_press(actor, action, callback.inc, callback.dec)
            return None
        outcome: Outcome = await handler(event, data)
        await answer(event, locale, outcome)
        return None
