"""Token buckets that keep delivery under Telegram's flood limits before it hits a 429.

Telegram asks for no more than about 20 messages a minute in a group, about one
a second in a private chat (short bursts tolerated) and about 30 a second overall.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.durations import parse_rate


@dataclass(frozen=True)
class Rate:
    count: int
    per: float  # seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'20/60s', '20/1m', '30/1s'."""
        return cls(*parse_rate(text))


@dataclass
class _Bucket:
    rate: Rate
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(float(self.rate.count),
                          self.tokens + (now - self.stamp) * self.rate.count / self.rate.per)
        self.stamp = now

    def ready_at(self, now: float) -> float:
        self.refill(now)
        if self.tokens >= 1:
            return now
        return now + (1 - self.tokens) * self.rate.per / self.rate.count


@dataclass
class Pacer:
    group: Rate
    private: Rate
    overall: Rate
    clock: Callable[[], float] = time.monotonic
    _chats: dict[int, _Bucket] = field(default_factory=dict)
    _all: _Bucket | None = None

    def _bucket(self, chat_id: int) -> _Bucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            # Positive ids are people (private chats); negative ids are groups and channels.
            rate = self.private if chat_id > 0 else self.group
            bucket = self._chats[chat_id] = _Bucket(rate, float(rate.count), self.clock())
        return bucket

    def _global(self) -> _Bucket:
        if self._all is None:
            self._all = _Bucket(self.overall, float(self.overall.count), self.clock())
        return self._all

    def ready_at(self, chat_id: int) -> float:
        """When a write to this chat may go (monotonic seconds)."""
        now = self.clock()
        return max(self._bucket(chat_id).ready_at(now), self._global().ready_at(now))

    def take(self, chat_id: int) -> None:
        now = self.clock()
        for bucket in (self._bucket(chat_id), self._global()):
            bucket.refill(now)
            bucket.tokens -= 1
