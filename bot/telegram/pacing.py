"""Pacing: every write to a chat stays under Telegram's flood limits, so it never answers 429.

Telegram's limits: about one message a second in one chat with a burst of at most three,
at most twenty in any sixty seconds in a group, about thirty a second overall. Every method
that writes to a chat counts (sends, edits, topic changes); answerCallbackQuery does not.

The pacer counts what was sent, not what was planned: `PacedSession` records each write
when Telegram's answer arrives, and the delivery worker stores those writes on the outbox
row (`sent_at`, `writes`), from which a restarted worker seeds its pacer. The answer comes
after Telegram counted the write, so the recorded times are never earlier than Telegram's:
a sequence the pacer allows is one Telegram allows, with no safety margin to waste.

The lane people wait for may use a group's whole window; the other lanes leave `headroom`
writes of it free, so a press during a storm gets its card edit at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramServerError
from aiogram.methods.base import TelegramType

from bot.durations import parse_rate

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

    from bot.config import Settings


@dataclass(frozen=True)
class Rate:
    count: int
    per: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'20/60s', '20/1m', '30/1s', '3/0.15' (bare seconds)."""
        return cls(*parse_rate(text))


@dataclass(frozen=True)
class Limits:
    private: Rate = Rate(3, 3)  # a private chat: a burst of `count`, refilled at count/per
    group_burst: Rate = Rate(3, 3)  # a group's own bucket, as in a private chat
    group: Rate = Rate(20, 60)  # a group: at most `count` in any sliding `per` seconds
    overall: Rate = Rate(30, 1)  # every chat together, sliding window
    headroom: int = 3  # writes of a group's window the lanes nobody waits for leave free

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            private=Rate.parse(s.telegram_private_rate),
            group_burst=Rate.parse(s.telegram_group_burst),
            group=Rate.parse(s.telegram_group_rate), overall=Rate.parse(s.telegram_global_rate),
            headroom=s.telegram_people_headroom,
        )

    @property
    def horizon(self) -> float:
        """How far back a sent write still matters."""
        return max(self.group.per, self.overall.per, self.private.per, self.group_burst.per)


@dataclass
class _Bucket:
    """A token bucket kept as its theoretical arrival time (GCRA): the same decisions as
    Telegram's bucket, in constant space, and exact when replayed from stored send times."""

    rate: Rate
    tat: float = float("-inf")

    @property
    def interval(self) -> float:
        return self.rate.per / self.rate.count

    def ready_at(self, now: float, writes: int) -> float:
        # The last of `writes` conforms once the bucket holds them all.
        writes = min(writes, self.rate.count)
        tolerance = (self.rate.count - writes) * self.interval
        return max(now, self.tat - tolerance)

    def take(self, at: float) -> None:
        self.tat = max(self.tat, at) + self.interval


def _window_ready(times: deque[float], rate: Rate, limit: int, writes: int, now: float) -> float:
    """When `writes` more fit in a sliding window holding at most `limit` (times ascending)."""
    limit = max(1, limit)
    writes = min(writes, limit)
    inside = [t for t in times if t > now - rate.per]
    over = len(inside) + writes - limit
    if over <= 0:
        return now
    # The window moves past its oldest writes one by one.
    return inside[over - 1] + rate.per


@dataclass
class _Chat:
    bucket: _Bucket
    sent: deque[float] = field(default_factory=deque)  # groups: the window's writes


@dataclass
class Pacer:
    limits: Limits
    clock: Callable[[], float] = time.time  # wall clock: stored send times are unix times
    writes: int = 0  # every write recorded (the worker counts a row's writes by the difference)
    _chats: dict[int, _Chat] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            # Positive ids are people (private chats); negative ids are groups and channels.
            rate = self.limits.private if chat_id > 0 else self.limits.group_burst
            chat = self._chats[chat_id] = _Chat(_Bucket(rate))
        return chat

    def _forget(self, now: float) -> None:
        while self._all and self._all[0] <= now - self.limits.overall.per:
            self._all.popleft()
        for chat in self._chats.values():
            while chat.sent and chat.sent[0] <= now - self.limits.group.per:
                chat.sent.popleft()

    def delay(self, chat_id: int, writes: int = 1, *, people: bool = False) -> float:
        """Seconds until `writes` writes to this chat may go; 0 when they may go now."""
        now = self.clock()
        return self.ready_at(chat_id, writes, people=people, now=now) - now

    def ready_at(self, chat_id: int, writes: int = 1, *, people: bool = False,
                 now: float | None = None) -> float:
        """When `writes` writes to this chat may go (unix seconds); `people` for what someone
        is waiting for, which may use the headroom the other lanes leave."""
        now = self.clock() if now is None else now
        self._forget(now)
        chat = self._chat(chat_id)
        at = chat.bucket.ready_at(now, writes)
        if chat_id < 0:
            limit = self.limits.group.count - (0 if people else self.limits.headroom)
            at = max(at, _window_ready(chat.sent, self.limits.group, limit, writes, now))
        overall = self.limits.overall
        return max(at, _window_ready(self._all, overall, overall.count, writes, now))

    def record(self, chat_id: int, at: float | None = None) -> None:
        """One write Telegram answered (or may have received) at `at`."""
        at = self.clock() if at is None else at
        chat = self._chat(chat_id)
        chat.bucket.take(at)
        if chat_id < 0:
            _insert(chat.sent, at)
        _insert(self._all, at)
        self.writes += 1

    def seed(self, sent: Iterable[tuple[int, float, int]]) -> None:
        """Replay stored writes: (chat id, when, how many)."""
        for chat_id, at, count in sorted(sent, key=lambda s: s[1]):
            for _ in range(count):
                self.record(chat_id, at)


def _insert(times: deque[float], at: float) -> None:
    times.append(at)
    if len(times) > 1 and times[-2] > at:  # seeded out of order: keep the window sorted
        ordered = sorted(times)
        times.clear()
        times.extend(ordered)


def writes_to_chat(method_name: str, chat_id: object) -> int | None:
    """The chat a Bot API method writes to, or None for reads and chat-less methods."""
    if chat_id is None or method_name.startswith("get") or method_name == "answerCallbackQuery":
        return None
    try:
        return int(chat_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None  # a @channel name: not a chat this bot serves


class PacedSession(BaseRequestMiddleware):
    """Counts every write to a chat at the one seam all of them pass, and holds a write the
    pacer does not allow yet (a row that makes more writes than it was paced for)."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        chat_id = writes_to_chat(method.__api_method__, getattr(method, "chat_id", None))
        if chat_id is None:
            return await make_request(bot, method)
        wait = self.pacer.delay(chat_id, people=True)
        if wait > 0:
            # Only delivery writes to chats, one write at a time: nothing else can take
            # this moment meanwhile.
            await asyncio.sleep(wait)
        try:
            response = await make_request(bot, method)
        except (TelegramServerError, TelegramNetworkError):
            self.pacer.record(chat_id)  # it may have been delivered: count it
            raise
        except TelegramAPIError:
            raise  # refused (429 included): Telegram did not count it
        self.pacer.record(chat_id)
        return response
