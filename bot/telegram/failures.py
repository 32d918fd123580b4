"""Telegram's failure modes, sorted once for the delivery worker.

`sort_failure` says what kind of failure an exception from a Bot API call is; the
predicates name the one error each recognizes, so the code that tolerates a failure
says which one it means.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)


class Permanent(Exception):
    """A row that can never be sent as it is (for example an unknown outbox kind)."""


class Failure(StrEnum):
    RETRY_AFTER = "retry_after"  # 429: wait retry_after, holding the whole chat
    TRANSIENT = "transient"  # 5xx, network, timeout: back off and try again
    MIGRATED = "migrated"  # the group became a supergroup: move everything there
    NOT_MODIFIED = "not_modified"  # an edit that changes nothing: as good as done
    EDIT_TARGET_GONE = "edit_target_gone"  # the message was deleted: post it again
    BAD_URL = "bad_url"  # a button URL refused: send the links as text
    PERMANENT = "permanent"  # any other refusal: park the row, never retry


def is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


def is_bad_url(exc: TelegramBadRequest) -> bool:
    return "BUTTON_URL_INVALID" in exc.message or "wrong http url" in exc.message.lower()


def is_edit_target_gone(exc: TelegramBadRequest) -> bool:
    text = exc.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text


def sort_failure(exc: BaseException) -> Failure | None:
    """What kind of failure `exc` is; None for an exception that is not a delivery failure
    (a bug, which must propagate)."""
    if isinstance(exc, TelegramRetryAfter):
        return Failure.RETRY_AFTER
    if isinstance(exc, TelegramServerError | TelegramNetworkError | TimeoutError | OSError):
        return Failure.TRANSIENT
    if isinstance(exc, TelegramMigrateToChat):
        return Failure.MIGRATED
    if isinstance(exc, TelegramBadRequest):
        if is_not_modified(exc):
            return Failure.NOT_MODIFIED
        if is_edit_target_gone(exc):
            return Failure.EDIT_TARGET_GONE
        if is_bad_url(exc):
            return Failure.BAD_URL
    if isinstance(exc, TelegramAPIError | Permanent):
        return Failure.PERMANENT
    return None
