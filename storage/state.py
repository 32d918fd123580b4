"""Short-lived shared state: Redis when REDIS_URL is set, else this process.

Only things whose loss costs a convenience live here (a cached admin list,
"waiting for a rejection reason"); everything that matters, and anything that must be
exclusive, is in the database. So Redis going away is no reason to stop answering: the
state falls back to this process's memory and goes back to Redis when it answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

RETRY_EVERY = 1.0  # seconds between pings while Redis is away
REDIS_TIMEOUT = 1.0  # a press must not wait long for a cache


class StateStore(Protocol):
    async def open(self) -> None: ...
    async def get(self, key: str) -> Any | None: ...
    async def set(self, key: str, value: Any, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def close(self) -> None: ...
    def problem(self) -> str | None: ...


class MemoryState:
    def __init__(self) -> None:
        self._data: dict[str, tuple[float, str]] = {}

    async def open(self) -> None:
        pass

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

    def problem(self) -> str | None:
        return None

    def drain(self) -> list[tuple[str, Any, float]]:
        """Every live entry as (key, value, seconds left), and forget them all."""
        now = time.monotonic()
        live = [(key, json.loads(raw), expires - now)
                for key, (expires, raw) in self._data.items() if expires > now]
        self._data.clear()
        return live


class RedisState:
    def __init__(self, redis: Redis, prefix: str = "opsgate:") -> None:
        self.redis = redis
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "opsgate:") -> RedisState:
        # No retries inside the client: a failure is handled at once by the fallback.
        return cls(Redis.from_url(url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                                  socket_timeout=REDIS_TIMEOUT,
                                  socket_connect_timeout=REDIS_TIMEOUT), prefix)

    async def open(self) -> None:
        pass

    async def ping(self) -> None:
        await self.redis.ping()  # type: ignore[misc]

    async def get(self, key: str) -> Any | None:
        raw = await self.redis.get(self.prefix + key)
        return json.loads(raw) if raw is not None else None

    async def set(self, key: str, value: Any, ttl: float) -> None:
        await self.redis.set(self.prefix + key, json.dumps(value), px=max(1, int(ttl * 1000)))

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)

    async def close(self) -> None:
        await self.redis.aclose()

    def problem(self) -> str | None:
        return None


class FailoverState:
    """Redis while it answers; this process's memory while it does not (said once in the
    log, and by problem() for /readyz); back to Redis, with what was kept meanwhile, once a
    ping succeeds again."""

    def __init__(self, redis: RedisState, where: str, retry_every: float = RETRY_EVERY
                 ) -> None:
        self.redis = redis
        self.where = where
        self.retry_every = retry_every
        self.memory = MemoryState()
        self._down: str | None = None
        self._probe: asyncio.Task[None] | None = None

    async def open(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            self._went_down(exc)

    async def get(self, key: str) -> Any | None:
        if self._down is None:
            try:
                return await self.redis.get(key)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
        return await self.memory.get(key)

    async def set(self, key: str, value: Any, ttl: float) -> None:
        if self._down is None:
            try:
                return await self.redis.set(key, value, ttl)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
        await self.memory.set(key, value, ttl)

    async def delete(self, key: str) -> None:
        if self._down is None:
            try:
                return await self.redis.delete(key)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
        await self.memory.delete(key)

    def problem(self) -> str | None:
        if self._down is None:
            return None
        return f"Redis at {self.where} does not answer ({self._down}): state kept in process"

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            try:
                await self._probe
            except asyncio.CancelledError:
                pass
            self._probe = None
        await self.memory.close()
        await self.redis.close()

    def _went_down(self, exc: BaseException) -> None:
        if self._down is not None:
            return
        self._down = f"{type(exc).__name__}: {exc}"[:200]
        log.warning("Redis at %s does not answer (%s): short-lived state is kept in this "
                    "process until it answers again", self.where, self._down)
        self._probe = asyncio.create_task(self._wait_for_redis(), name="redis-probe")

    async def _wait_for_redis(self) -> None:
        while True:
            await asyncio.sleep(self.retry_every)
            try:
                await self.redis.ping()
            except (RedisError, OSError):
                continue
            # Switch first (no await in between), then hand over what was kept meanwhile.
            self._down = None
            kept = self.memory.drain()
            self._probe = None
            for done, (key, value, left) in enumerate(kept):
                try:
                    await self.redis.set(key, value, left)
                except (RedisError, OSError) as exc:
                    for rest in kept[done:]:
                        await self.memory.set(*rest)
                    self._went_down(exc)
                    return
            log.info("Redis at %s answers again: short-lived state is back in Redis (%d "
                     "entries handed over)", self.where, len(kept))
            return


def build_state(redis_url: str) -> StateStore:
    if not redis_url:
        return MemoryState()
    return FailoverState(RedisState.from_url(redis_url), _without_password(redis_url))


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
