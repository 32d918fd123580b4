"""What the clock decides: pending decisions expire, silences end, and a
heartbeat tells the next start how long the bot was away."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot import polling
from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from storage import repo
from storage.db import Database

Sweep = Callable[[], Awaitable[object]]


async def expire_due(db: Database, now: datetime, after: timedelta, voice: Voice) -> int:
    """Pending decisions nobody decided within `after` expire."""
    async with db.read() as conn:
        candidates = await repo.pending_older_than(conn, now - after)
    expired = 0
    for decision in candidates:
        async with db.write() as conn:
            if await transition(conn, decision.id, Event.EXPIRE, now, voice,
                                fields={"decided_at": now}, note={"at": now}):
                expired += 1
    return expired


class Timers:
    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        voice: Voice,
        approval_timeout: timedelta,
        sweeps: list[Sweep] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.voice = voice
        self.approval_timeout = approval_timeout
        self.sweeps = sweeps or []  # other periodic work (silences that ended)
        # Expiry is at most a quarter of the timeout late.
        self.every = min(5.0, max(0.2, approval_timeout.total_seconds() / 4))
        self._stage = polling.Stage("timers", self.tick, None, self.every)

    def start(self) -> None:
        self._stage.start()

    async def stop(self) -> None:
        await self._stage.stop()

    async def tick(self) -> None:
        await expire_due(self.db, self.clock(), self.approval_timeout, self.voice)
        for sweep in self.sweeps:
            await sweep()
        async with self.db.write() as conn:
            await repo.set_meta(conn, "heartbeat", self.clock().isoformat())
