"""One outbox row -> one Bot API call, for rows that are not cards: thread replies,
plain messages and their edits, and the command menu."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyParameters,
)

from bot.telegram.failures import is_not_modified
from storage import outbox, repo
from storage.db import Database
from storage.repo.sql import Conn

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True)
class Delivered:
    """A write Telegram carried out: the message it created (if any), and what to store
    about it in the same transaction as the outbox row's done mark."""

    sent_id: int | None = None
    record: Callable[[Conn], Awaitable[None]] | None = None


def markup_of(
    rows: list[list[dict[str, Any]]], *, urls: bool = True
) -> InlineKeyboardMarkup | None:
    buttons = [
        [InlineKeyboardButton(**button) for button in row if urls or "url" not in button]
        for row in rows
    ]
    buttons = [row for row in buttons if row]
    return InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    if not message_id:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def send_reply(bot: Bot, db: Database, item: outbox.OutboxItem) -> int:
    """A reply in an incident's thread, under its card (or standing alone if it is gone)."""
    assert item.incident_id is not None
    async with db.read() as conn:
        card = await repo.get_card(conn, item.incident_id, item.chat_id)
    reply_to = item.payload.get("reply_to") or (card.message_id if card else None)
    thread_id = card.message_thread_id if card else None
    message = await bot.send_message(
        chat_id=item.chat_id,
        text=item.payload["text"],
        message_thread_id=thread_id,
        reply_parameters=_reply_to(reply_to),
        reply_markup=markup_of(item.payload.get("keyboard") or []),
        link_preview_options=NO_PREVIEW,
    )
    return message.message_id


async def send_plain(bot: Bot, item: outbox.OutboxItem) -> int:
    payload = item.payload
    message = await bot.send_message(
        chat_id=item.chat_id,
        text=payload["text"],
        message_thread_id=payload.get("thread_id"),
        reply_parameters=_reply_to(payload.get("reply_to")),
        reply_markup=markup_of(payload.get("keyboard") or []),
        link_preview_options=NO_PREVIEW,
    )
    return message.message_id


async def edit_plain(bot: Bot, item: outbox.OutboxItem) -> None:
    payload = item.payload
    try:
        await bot.edit_message_text(
            text=payload["text"], chat_id=item.chat_id, message_id=payload["message_id"],
            reply_markup=markup_of(payload.get("keyboard") or []),
            link_preview_options=NO_PREVIEW,
        )
    except TelegramBadRequest as exc:
        if not is_not_modified(exc):
            raise


async def set_commands(bot: Bot, item: outbox.OutboxItem) -> None:
    payload = item.payload
    scope_name = str(payload.get("scope") or "")
    scope: Any = {
        "all_group_chats": BotCommandScopeAllGroupChats(),
        "all_private_chats": BotCommandScopeAllPrivateChats(),
    }.get(scope_name) or BotCommandScopeChat(chat_id=item.chat_id)
    await bot.set_my_commands(
        [BotCommand(**c) for c in payload["commands"]], scope=scope,
        language_code=payload.get("language_code"),
    )
