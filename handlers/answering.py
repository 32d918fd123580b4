"""Answering: a callback query once, at once, with a toast from templates/; a command
with a reply queued in the outbox."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, Message

from bot import texts
from bot.chat.answers import Answer
from bot.chat.card_buttons import Inquiries
from bot.incidents.approvals import Outcome

log = logging.getLogger(__name__)


async def answer(query: CallbackQuery, locale: str, outcome: Outcome | str) -> None:
    """A too-old query cannot be answered any more; the press is still recorded."""
    if isinstance(outcome, str):
        outcome = Outcome(outcome)
    try:
        await query.answer(text=texts.toast(outcome.toast, locale, **outcome.ctx),
                           show_alert=outcome.alert)
    except TelegramBadRequest as exc:
        log.warning("could not answer callback %s: %s", query.id, exc.message)


async def reply(message: Message, inquiries: Inquiries, answer: Answer) -> None:
    """A command's answer, as a reply in the same chat and topic (through the outbox)."""
    await inquiries.say(
        message.chat.id, answer.text, reply_to=message.message_id,
        thread_id=message.message_thread_id if message.is_topic_message else None,
        keyboard=answer.keyboard,
    )
