"""The stages an alert passes through, in order, and the workers that run them.

    HTTP alert ─▶ ingest (bot.alerts.ingest: incident, alerts, a decision to analyse, a card row)
      ─▶ analysis (bot.decisions.analysis: the engine's proposal; pending, invalid or approved)
      ─▶ approval (bot.incidents.approvals: presses, through the state machine bot.incidents.states)
      ─▶ execution (bot.execution.runner: approved ─▶ executing ─▶ succeeded | failed)
    and at every step: delivery (bot.telegram.delivery: outbox rows ─▶ Telegram)
    beside them: timers (bot.incidents.timers: expiry, silences that ended, heartbeat)

No stage calls the next. Each commits its result, and the commit wakes the
stage it concerns (storage.db.Wake: outbox rows wake delivery, a new decision
wakes analysis, an approval wakes execution); each stage also polls, so work
committed by another process is found too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.cards.notes import Voice
from bot.decisions.analysis import CONCURRENCY, AnalysisWorker, AutoApprover, Engine
from bot.execution.runner import ExecutionRunner, ExecutorLike, PlaybookStats
from bot.incidents import recovery
from bot.incidents.timers import Sweep, Timers
from bot.metrics import Metrics
from bot.telegram.delivery import DeliveryWorker
from storage.db import Database
from storage.repo.lease import Fence


@dataclass
class Pipeline:
    db: Database
    clock: Callable[[], datetime]
    voice: Voice
    analysis: AnalysisWorker
    execution: ExecutionRunner
    timers: Timers
    delivery: DeliveryWorker
    fence: Fence | None = None

    @classmethod
    def connect(
        cls,
        db: Database,
        clock: Callable[[], datetime],
        voice: Voice,
        *,
        engine: Engine,
        executor: ExecutorLike,
        delivery: DeliveryWorker,
        approval_timeout: timedelta,
        critical_approvals: int,
        playbooks: PlaybookStats | None = None,
        auto_approver: AutoApprover | None = None,
        sweeps: list[Sweep] | None = None,
        metrics: Metrics | None = None,
        analysis_concurrency: int = CONCURRENCY,
        fence: Fence | None = None,
    ) -> Pipeline:
        return cls(
            db, clock, voice,
            analysis=AnalysisWorker(db, engine, clock, voice,
                                    critical_approvals=critical_approvals,
                                    auto_approver=auto_approver,
                                    concurrency=analysis_concurrency,
                                    yield_to=delivery.caught_up),
            execution=ExecutionRunner(db, executor, clock, voice, playbooks, metrics, fence),
            timers=Timers(db, clock, voice, approval_timeout, sweeps),
            delivery=delivery,
            fence=fence,
        )

    async def start(self) -> None:
        """At becoming leader (at start-up on SQLite). What a crash or the last leader left
        behind is made safe before any stage looks at it."""
        await recovery.recover(self.db, self.clock, self.voice, self.fence)
        self.delivery.start()
        self.analysis.start()
        self.execution.start()
        self.timers.start()

    async def stop(self) -> None:
        await self.timers.stop()
        await self.execution.stop()
        await self.analysis.stop()
        await self.delivery.stop()
