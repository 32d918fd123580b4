"""Short-lived shared state: Redis when REDIS_URL is set, else this process.

Only things whose loss costs a convenience live here (a cached admin list,
"waiting for a rejection reason"); everything that matters is in SQLite.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from redis.asyncio import Redis


class StateStore(Protocol):
    async def get(self, key: str) -> Any | None: ...
    async def set(self, key: str, value: Any, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def close(self) -> None: ...


class MemoryState:
    def __init__(self) -> None:
        self._data: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> Any | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires, raw = entry
        if expires <= time.monotonic():
            self._data.pop(key, None)
            return None
        return json.loads(raw)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, json.dumps(value))

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def close(self) -> None:
        self._data.clear()


class RedisState:
    def __init__(self, redis: Redis, prefix: str = "opsgate:") -> None:
        self.redis = redis
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "opsgate:") -> RedisState:
        return cls(Redis.from_url(url, decode_responses=True), prefix)

    async def get(self, key: str) -> Any | None:
        raw = await self.redis.get(self.prefix + key)
        return json.loads(raw) if raw is not None else None

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self.redis.set(self.prefix + key, json.dumps(value), px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def close(self) -> None:
        await self.redis.aclose()


def build_state(redis_url: str) -> StateStore:
    return RedisState.from_url(redis_url) if redis_url else MemoryState()
