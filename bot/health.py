"""What /healthz, /readyz and /metrics report.

/healthz says the process is alive and serving HTTP, nothing more (a supervisor restarts a
process that fails it). /readyz says whether this process can take alerts: 503 only when it
cannot store them, because refusing alerts while Telegram is down would lose them; whatever
else is wrong (Telegram, a stuck outbox, Redis, standby) is listed as degraded with a 200.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.metrics import Metrics
from bot.telegram.observed import TelegramReach
from storage import outbox, repo
from storage.db import Database, StorageUnavailable

LEADER = "leader"


class StateHealth(Protocol):
    def problem(self) -> str | None: ...


@dataclass
class Readiness:
    db: Database
    clock: Callable[[], datetime]
    reach: TelegramReach
    state: StateHealth
    telegram_after: timedelta
    outbox_after: timedelta
    # The role in the leader lease (bot.leadership); one process on SQLite always leads.
    role: Callable[[], str] = field(default=lambda: LEADER)

    async def degraded(self) -> dict[str, str]:
        """Reason -> what is wrong, for everything that is not a reason to refuse alerts."""
        reasons: dict[str, str] = {}
        silent = self.reach.unreachable_for()
        if silent is not None and silent >= self.telegram_after.total_seconds():
            reasons["telegram"] = (f"no answer from Telegram for {silent:.0f} s "
                                   f"({self.reach.last_error})")
        async with self.db.read() as conn:
            oldest = await outbox.oldest_unsent_at(conn)
        if oldest is not None:
            waiting = self.clock() - oldest
            if waiting >= self.outbox_after:
                reasons["outbox"] = (f"the oldest unsent Telegram write has waited "
                                     f"{waiting.total_seconds():.0f} s")
        problem = self.state.problem()
        if problem is not None:
            reasons["redis"] = problem
        role = self.role()
        if role != LEADER:
            reasons["standby"] = f"this process is a {role}: it stores alerts, another sends"
        return reasons

    async def check(self) -> tuple[int, dict[str, Any]]:
        """The /readyz answer: a real write proves alerts can be stored right now."""
        now = self.clock()
        try:
            async with self.db.write() as conn:
                await repo.set_meta(conn, "ready_checked_at", now.isoformat())
        except StorageUnavailable as exc:
            return 503, {"status": "unavailable",
                         "error": f"cannot store alerts: database write failed: {exc}"}
        degraded = await self.degraded()
        return 200, {"status": "degraded" if degraded else "ready", "role": self.role(),
                     "degraded": degraded}

    async def metrics_text(self, metrics: Metrics) -> bytes:
        await metrics.refresh(self.db, self.clock(), await self.degraded(), self.role())
        return metrics.render()
