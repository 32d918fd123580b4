"""The outbox worker: the only writer to Telegram (answerCallbackQuery aside).

Failures are sorted once, here: 429 waits `retry_after` (and holds the whole
chat), 5xx and network errors back off, a permanent 4xx is parked with a loud
log line and never blocks other writes. "message is not modified" counts as
success, and a card whose rendered digest equals the last one sent is not
sent at all.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
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

from bot.telegram.pacing import Pacer
from storage import outbox, repo
from storage.db import Database, StorageUnavailable

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
IDLE_POLL = 1.0  # picks up rows written by another process on the same database


@dataclass(frozen=True)
class RenderedCard:
    text: str
    keyboard: list[list[dict[str, Any]]]
    digest: str


CardRenderer = Callable[[str, int], Awaitable[RenderedCard | None]]
SentHook = Callable[[outbox.OutboxItem, int], Awaitable[None]]
MigrateHook = Callable[[int, int], Awaitable[None]]


class Topics(Protocol):
    async def thread_for(self, incident_id: str, chat_id: int) -> int | None: ...
    async def close(self, incident_id: str, chat_id: int) -> None: ...


def markup_of(
    rows: list[list[dict[str, Any]]], *, urls: bool = True
) -> InlineKeyboardMarkup | None:
    buttons = [
        [InlineKeyboardButton(**button) for button in row if urls or "url" not in button]
        for row in rows
    ]
    buttons = [row for row in buttons if row]
    return InlineKeyboardMarkup(inline_keyboard=buttons) if buttons else None


def _is_not_modified(exc: TelegramBadRequest) -> bool:
    return "message is not modified" in exc.message


def _is_bad_url(exc: TelegramBadRequest) -> bool:
    return "BUTTON_URL_INVALID" in exc.message or "wrong http url" in exc.message.lower()


def _is_edit_target_gone(exc: TelegramBadRequest) -> bool:
    text = exc.message.lower()
    return "message to edit not found" in text or "message can't be edited" in text


class _Permanent(Exception):
    pass


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        bot: Bot,
        render_card: CardRenderer,
        *,
        max_attempts: int = 20,
        on_sent: SentHook | None = None,
        topics: Topics | None = None,
        on_migrate: MigrateHook | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        self.pacer = pacer
        self._skipped_until: float | None = None  # earliest time a skipped row may go
        self.topics = topics
        self.on_migrate = on_migrate
        self.db = db
        self.bot = bot
        self.render_card = render_card
        self.max_attempts = max_attempts
        self.on_sent = on_sent
        self.metrics: Counter[str] = Counter()
        self._wake = asyncio.Event()
        self._chat_hold: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        async with self.db.write() as conn:
            released = await outbox.release_stuck(conn)
        if released:
            log.warning("delivery: %d writes were in flight at the last stop; sending again",
                        released)
        while True:
            try:
                worked = await self.run_once()
            except StorageUnavailable as exc:
                log.error("delivery: database unavailable: %s", exc)
                worked = False
            except Exception:
                log.exception("delivery: unexpected error; continuing")
                worked = False
            if worked:
                continue
            timeout = IDLE_POLL
            async with self.db.read() as conn:
                nxt = await outbox.next_due_at(conn)
            if nxt is not None:
                # Due rows skipped for a 429 hold or for pacing wait until their chat may go.
                if nxt <= time.time() and self._skipped_until is not None:
                    nxt = self._skipped_until
                timeout = max(0.0, min(IDLE_POLL, nxt - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_once(self) -> bool:
        """Process what is due now. True if anything was attempted."""
        now = time.time()
        async with self.db.read() as conn:
            items = await outbox.due(conn, now)
        worked = False
        self._skipped_until = None
        for item in items:
            wait = self._wait_for(item)
            if wait > 0:
                until = time.time() + wait
                self._skipped_until = min(self._skipped_until or until, until)
                continue
            async with self.db.write() as conn:
                if not await outbox.claim(conn, item.id):
                    continue
            worked = True
            if self.pacer is not None and item.kind != outbox.COMMANDS:
                self.pacer.take(item.chat_id)
            await self._process(item)
        return worked

    def _wait_for(self, item: outbox.OutboxItem) -> float:
        """Seconds before a row may go: a 429 hold on its chat, or pacing."""
        wait = self._chat_hold.get(item.chat_id, 0.0) - time.time()
        if self.pacer is not None and item.kind != outbox.COMMANDS:
            wait = max(wait, self.pacer.ready_at(item.chat_id) - time.monotonic())
        return max(0.0, wait)

    # ------------------------------------------------------------ one row

    async def _process(self, item: outbox.OutboxItem) -> None:
        try:
            sent_id = await self._deliver(item)
        except TelegramRetryAfter as exc:
            wait = float(exc.retry_after)
            self._chat_hold[item.chat_id] = time.time() + wait
            self.metrics["retry_after"] += 1
            log.warning("delivery: 429 for chat %s, waiting %ss", item.chat_id, wait)
            await self._retry(item, time.time() + wait, f"429 retry after {wait}s", count=False)
        except (TelegramServerError, TelegramNetworkError, TimeoutError, OSError) as exc:
            self.metrics["transient_errors"] += 1
            delay = min(MAX_BACKOFF, 2.0 ** min(item.attempts, 10)) * (0.5 + random.random())
            log.warning("delivery: %s for %s (attempt %d), retrying in %.1fs",
                        type(exc).__name__, _what(item), item.attempts + 1, delay)
            await self._retry(item, time.time() + delay, f"{type(exc).__name__}: {exc}")
        except TelegramMigrateToChat as exc:
            if self.on_migrate is None:
                await self._park(item, f"chat migrated to {exc.migrate_to_chat_id}")
                return
            log.warning("chat %s was upgraded to supergroup %s; moving everything there",
                        item.chat_id, exc.migrate_to_chat_id)
            self.metrics["migrated"] += 1
            # Rewrites pending rows (this one included) to the new chat id.
            await self.on_migrate(item.chat_id, exc.migrate_to_chat_id)
            await self._retry(item, time.time(), "chat migrated", count=False)
        except (TelegramAPIError, _Permanent) as exc:
            await self._park(item, f"{type(exc).__name__}: {exc}")
        else:
            async with self.db.write() as conn:
                await outbox.mark_done(conn, item.id, sent_id)
            if sent_id is not None and self.on_sent is not None:
                await self.on_sent(item, sent_id)

    async def _retry(self, item: outbox.OutboxItem, at: float, error: str, *, count: bool = True
                     ) -> None:
        if count and item.attempts + 1 >= self.max_attempts:
            await self._park(item, f"gave up after {item.attempts + 1} attempts: {error}")
            return
        async with self.db.write() as conn:
            await outbox.retry_later(conn, item.id, at, error)

    async def _park(self, item: outbox.OutboxItem, error: str) -> None:
        self.metrics["parked"] += 1
        log.error(
            "DELIVERY PARKED: %s to chat %s will not be sent: %s",
            _what(item), item.chat_id, error,
        )
        async with self.db.write() as conn:
            await outbox.park(conn, item.id, error)

    async def _deliver(self, item: outbox.OutboxItem) -> int | None:
        if item.kind == outbox.CARD:
            assert item.incident_id is not None
            return await self._sync_card(item.incident_id, item.chat_id)
        if item.kind == outbox.REPLY:
            return await self._send_reply(item)
        if item.kind == outbox.MESSAGE:
            return await self._send_plain(item)
        if item.kind == outbox.EDIT:
            await self._edit_plain(item)
            return None
        if item.kind == outbox.TOPIC_CLOSE:
            if self.topics is not None and item.incident_id:
                await self.topics.close(item.incident_id, item.chat_id)
            return None
        if item.kind == outbox.COMMANDS:
            await self._set_commands(item)
            return None
        raise _Permanent(f"unknown outbox kind {item.kind!r}")

    async def _sync_card(self, incident_id: str, chat_id: int) -> int | None:
        card = await self.render_card(incident_id, chat_id)
        if card is None:
            return None
        async with self.db.read() as conn:
            row = await repo.get_card(conn, incident_id, chat_id)
        if row is not None and row.message_id is not None:
            if row.last_rendered_hash == card.digest:
                self.metrics["identical_skipped"] += 1
                return None
            try:
                await self._send_with_url_fallback(
                    lambda markup: self.bot.edit_message_text(
                        text=card.text, chat_id=chat_id, message_id=row.message_id,
                        reply_markup=markup, link_preview_options=_NO_PREVIEW,
                    ),
                    card.keyboard,
                )
                self.metrics["edited"] += 1
            except TelegramBadRequest as exc:
                if _is_not_modified(exc):
                    self.metrics["not_modified"] += 1
                elif _is_edit_target_gone(exc):
                    # Someone deleted the card: post a fresh one rather than go silent.
                    log.warning("card of %s is gone (%s); posting it again", incident_id, exc)
                    return await self._post_card(incident_id, chat_id, card)
                else:
                    raise
            async with self.db.write() as conn:
                await repo.save_card(
                    conn, incident_id, chat_id, message_id=row.message_id,
                    thread_id=row.message_thread_id, rendered_hash=card.digest,
                )
            return None
        return await self._post_card(incident_id, chat_id, card)

    async def _post_card(self, incident_id: str, chat_id: int, card: RenderedCard) -> int:
        async with self.db.read() as conn:
            row = await repo.get_card(conn, incident_id, chat_id)
        thread_id = row.message_thread_id if row else None
        if thread_id is None and self.topics is not None:
            thread_id = await self.topics.thread_for(incident_id, chat_id)
        message = await self._send_with_url_fallback(
            lambda markup: self.bot.send_message(
                chat_id=chat_id, text=card.text, reply_markup=markup,
                message_thread_id=thread_id, link_preview_options=_NO_PREVIEW,
            ),
            card.keyboard,
        )
        self.metrics["sent"] += 1
        async with self.db.write() as conn:
            await repo.save_card(
                conn, incident_id, chat_id, message_id=message.message_id,
                thread_id=thread_id, rendered_hash=card.digest,
            )
        return message.message_id

    async def _send_with_url_fallback(self, call: Callable[[Any], Awaitable[Any]],
                                      keyboard: list[list[dict[str, Any]]]) -> Any:
        try:
            return await call(markup_of(keyboard))
        except TelegramBadRequest as exc:
            if not _is_bad_url(exc):
                raise
            # One refused link must not cost the whole card.
            log.warning("Telegram refused a button URL (%s); sending without URL buttons", exc)
            self.metrics["url_fallback"] += 1
            return await call(markup_of(keyboard, urls=False))

    async def _send_reply(self, item: outbox.OutboxItem) -> int:
        assert item.incident_id is not None
        async with self.db.read() as conn:
            card = await repo.get_card(conn, item.incident_id, item.chat_id)
        reply_to = item.payload.get("reply_to") or (card.message_id if card else None)
        thread_id = card.message_thread_id if card else None
        message = await self.bot.send_message(
            chat_id=item.chat_id,
            text=item.payload["text"],
            message_thread_id=thread_id,
            reply_parameters=(
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to else None
            ),
            reply_markup=markup_of(item.payload.get("keyboard") or []),
            link_preview_options=_NO_PREVIEW,
        )
        self.metrics["replies"] += 1
        return message.message_id

    async def _send_plain(self, item: outbox.OutboxItem) -> int:
        payload = item.payload
        reply_to = payload.get("reply_to")
        message = await self.bot.send_message(
            chat_id=item.chat_id,
            text=payload["text"],
            message_thread_id=payload.get("thread_id"),
            reply_parameters=(
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to else None
            ),
            reply_markup=markup_of(payload.get("keyboard") or []),
            link_preview_options=_NO_PREVIEW,
        )
        self.metrics["messages"] += 1
        return message.message_id

    async def _edit_plain(self, item: outbox.OutboxItem) -> None:
        payload = item.payload
        try:
            await self.bot.edit_message_text(
                text=payload["text"], chat_id=item.chat_id, message_id=payload["message_id"],
                reply_markup=markup_of(payload.get("keyboard") or []),
                link_preview_options=_NO_PREVIEW,
            )
        except TelegramBadRequest as exc:
            if not _is_not_modified(exc):
                raise
        self.metrics["edited"] += 1

    async def _set_commands(self, item: outbox.OutboxItem) -> None:
        payload = item.payload
        scope_name = str(payload.get("scope") or "")
        scope: Any = {
            "all_group_chats": BotCommandScopeAllGroupChats(),
            "all_private_chats": BotCommandScopeAllPrivateChats(),
        }.get(scope_name) or BotCommandScopeChat(chat_id=item.chat_id)
        await self.bot.set_my_commands(
            [BotCommand(**c) for c in payload["commands"]], scope=scope,
            language_code=payload.get("language_code"),
        )


_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def _what(item: outbox.OutboxItem) -> str:
    subject = f"incident {item.incident_id}" if item.incident_id else "message"
    return f"{item.kind} for {subject} (outbox #{item.id})"

