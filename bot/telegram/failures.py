"""Telegram's failure modes, sorted once for the delivery worker.

Each predicate names the one error it recognizes, so the code that tolerates a
failure says which one it means.
"""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest


class Permanent(Exception):
    """A row that can never be sent as it is (for example an unknown outbox kind)."""


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


def is_bad_url(exc: TelegramBadRequest) -> bool:
    return "BUTTON_URL_INVALID" in exc.message or "wrong http url" in exc.message.lower()


def is_edit_target_gone(exc: TelegramBadRequest) -> bool:
    text = exc.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text
