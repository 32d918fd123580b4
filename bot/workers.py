"""Background work driven from the database: analysis, execution, timers.

Each job reads its input from SQLite and writes its result with a
compare-and-set, so a crash at any point leaves a state the next start
can pick up (or, for execution, refuses to repeat).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot import texts
from bot.cards import notes
from bot.incidents.approvals import ApprovalService
from bot.incidents.risk import required_approvals
from bot.models import Action, Alert, DecisionState, Incident, Proposal
from storage import repo
from storage.db import Database

log = logging.getLogger(__name__)


class AnalysisLike(Protocol):
    proposal: Proposal | None
    invalid_reason: str | None
    playbook_id: int | None
    effect: str | None


class Engine(Protocol):
    async def analyze(self, incident: Incident, alerts: list[Alert]) -> Any: ...


class ExecutorLike(Protocol):
    async def run(
        self, action: Action, *, incident_id: str | None = None, decision_id: int | None = None
    ) -> Any: ...


class PlaybookStats(Protocol):
    async def record_execution(self, playbook_id: int, success: bool, dry_run: bool) -> None: ...


@dataclass(frozen=True)
class WorkerConfig:
    locale: str
    tz_name: str
    critical_approvals: int = 2


class Workers:
    def __init__(
        self,
        db: Database,
        engine: Engine,
        executor: ExecutorLike,
        approvals: ApprovalService,
        cfg: WorkerConfig,
        clock: Callable[[], datetime],
        on_change: Callable[[], None],
        playbooks: PlaybookStats | None = None,
        auto_approver: Callable[[int, Any], Any] | None = None,
    ) -> None:
        self.db = db
        self.engine = engine
        self.executor = executor
        self.approvals = approvals
        self.cfg = cfg
        self.clock = clock
        self.on_change = on_change
        self.playbooks = playbooks
        self.auto_approver = auto_approver
        self._analyze_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running: set[int] = set()
        self._closed = False
        self.tick_hooks: list[Callable[[], Any]] = []  # periodic extras (silence expiry)

    # ------------------------------------------------------------ lifecycle

    async def recover(self) -> None:
        """At start-up: executions cut short become failed, never re-run."""
        now = self.clock()
        async with self.db.write() as conn:
            for decision in await repo.decisions_in_state(conn, DecisionState.EXECUTING):
                if await repo.transition(
                    conn, decision.id, DecisionState.EXECUTING, DecisionState.FAILED, now,
                    result={"ok": False, "error": "outcome unknown — check manually",
                            "unknown": True},
                ):
                    inc = await repo.get_incident(conn, decision.incident_id)
                    assert inc is not None
                    log.error("decision %s of %s was executing at the last stop: marked failed",
                              decision.id, inc.id)
                    await repo.audit(conn, action="execute", result="unknown_outcome", now=now,
                                     incident_id=inc.id, decision_id=decision.id)
                    await notes.card_changed(conn, inc, now)
                    await notes.reply(conn, inc, "outcome", now, self.cfg.locale,
                                      self.cfg.tz_name, succeeded=False, unknown=True,
                                      dry_run=False, effect=None, output="", error="")
        async with self.db.read() as conn:
            approved = await repo.decisions_in_state(conn, DecisionState.APPROVED)
        for decision in approved:
            # Approved but never started: running it now is still at most once.
            self.spawn_execution(decision.id)
        self.on_change()

    def start(self, sweep_every: float) -> None:
        self._spawn(self._analysis_loop(), "analysis")
        self._spawn(self._timer_loop(sweep_every), "timers")

    async def stop(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def kick_analysis(self) -> None:
        self._analyze_wake.set()

    # ------------------------------------------------------------ analysis

    async def _analysis_loop(self) -> None:
        while True:
            try:
                await self.analyze_pending()
            except Exception:
                log.exception("analysis loop error")
            try:
                await asyncio.wait_for(self._analyze_wake.wait(), 2.0)
            except TimeoutError:
                pass
            self._analyze_wake.clear()

    async def analyze_pending(self) -> int:
        async with self.db.read() as conn:
            waiting = await repo.decisions_in_state(conn, DecisionState.ANALYZING)
        for decision in waiting:
            await self.analyze_one(decision.id, decision.incident_id)
        return len(waiting)

    async def analyze_one(self, decision_id: int, incident_id: str) -> None:
        async with self.db.read() as conn:
            inc = await repo.get_incident(conn, incident_id)
            alerts = await repo.alerts_of(conn, incident_id)
        if inc is None:
            return
        failure = None
        try:
            analysis = await self.engine.analyze(inc, alerts)
        except Exception as exc:  # the engine promises a rule answer; be safe anyway
            log.exception("decision engine failed for %s", incident_id)
            analysis = None
            failure = texts.plain(texts.render("decisions/analysis_failed.html",
                                               self.cfg.locale, error=str(exc)))
        auto = None
        if (self.auto_approver is not None and analysis is not None
                and analysis.proposal is not None and analysis.proposal.action is not None):
            auto = await self.auto_approver(analysis.playbook_id, analysis.proposal)
        now = self.clock()
        execute_after = False
        async with self.db.write() as conn:
            if analysis is None or analysis.proposal is None:
                reason = failure or (analysis.invalid_reason if analysis else None) or ""
                won = await repo.transition(
                    conn, decision_id, DecisionState.ANALYZING, DecisionState.INVALID, now,
                    invalid_reason=reason,
                    proposal=analysis.proposal if analysis else None,
                )
            else:
                proposal: Proposal = analysis.proposal
                required = required_approvals(proposal.risk, self.cfg.critical_approvals)
                fields = dict(
                    proposal=proposal, effect=analysis.effect,
                    playbook_id=analysis.playbook_id, required_approvals=required,
                )
                if auto:
                    won = await repo.transition(
                        conn, decision_id, DecisionState.ANALYZING, DecisionState.APPROVED, now,
                        auto_approved=True, decided_by="opsgate", decided_at=now,
                        reason=str(auto), **fields,
                    )
                    execute_after = won
                else:
                    won = await repo.transition(
                        conn, decision_id, DecisionState.ANALYZING, DecisionState.PENDING, now,
                        **fields,
                    )
            if won:
                await repo.audit(conn, action="analyze", result="done", now=now,
                                 incident_id=inc.id, decision_id=decision_id,
                                 detail="auto-approved" if execute_after else None)
                current = await repo.get_incident(conn, inc.id)
                assert current is not None
                await notes.card_changed(conn, current, now)
                if execute_after:
                    await notes.reply(conn, current, "approved", now, self.cfg.locale,
                                      self.cfg.tz_name, names=[], at=now, auto_reason=str(auto))
        self.on_change()
        if execute_after:
            self.spawn_execution(decision_id)

    # ------------------------------------------------------------ execution

    def spawn_execution(self, decision_id: int) -> None:
        # After stop, an approved decision stays approved; the next start runs it.
        if decision_id in self._running or self._closed:
            return
        self._running.add(decision_id)
        task = self._spawn(self.execute(decision_id), f"execute-{decision_id}")
        task.add_done_callback(lambda _t: self._running.discard(decision_id))

    async def execute(self, decision_id: int) -> bool:
        """Run an approved decision at most once. True if this call ran it."""
        now = self.clock()
        async with self.db.write() as conn:
            decision = await repo.get_decision(conn, decision_id)
            if decision is None or not await repo.transition(
                conn, decision_id, DecisionState.APPROVED, DecisionState.EXECUTING, now
            ):
                return False
            inc = await repo.get_incident(conn, decision.incident_id)
            assert inc is not None
            await repo.audit(conn, action="execute", result="started", now=now,
                             incident_id=inc.id, decision_id=decision_id)
            await notes.card_changed(conn, inc, now)
        self.on_change()
        assert decision.proposal is not None and decision.proposal.action is not None
        try:
            result = await self.executor.run(
                decision.proposal.action, incident_id=inc.id, decision_id=decision_id
            )
            result_data = result.model_dump(mode="json")
            ok = bool(result.ok)
            dry_run = bool(getattr(result, "dry_run", False))
        except Exception as exc:
            log.exception("executor raised for decision %s", decision_id)
            result_data = {"ok": False, "error": f"executor error: {exc}"}
            ok, dry_run = False, False
        now = self.clock()
        async with self.db.write() as conn:
            won = await repo.transition(
                conn, decision_id, DecisionState.EXECUTING,
                DecisionState.SUCCEEDED if ok else DecisionState.FAILED, now, result=result_data,
            )
            if won:
                await repo.audit(conn, action="execute", result="succeeded" if ok else "failed",
                                 now=now, incident_id=inc.id, decision_id=decision_id,
                                 detail=(result_data.get("error") or "")[:500] or None)
                current = await repo.get_incident(conn, inc.id)
                assert current is not None
                await notes.card_changed(conn, current, now)
                effect, _ = await repo.decision_extras(conn, decision_id)
                await notes.reply(
                    conn, current, "outcome", now, self.cfg.locale, self.cfg.tz_name,
                    succeeded=ok, unknown=False, dry_run=dry_run, effect=effect,
                    output=str(result_data.get("output") or ""),
                    error=str(result_data.get("error") or ""),
                )
        if won and self.playbooks is not None:
            _, playbook_id = await self._extras(decision_id)
            if playbook_id is not None:
                await self.playbooks.record_execution(playbook_id, ok, dry_run)
        self.on_change()
        return True

    async def _extras(self, decision_id: int) -> tuple[str | None, int | None]:
        async with self.db.read() as conn:
            return await repo.decision_extras(conn, decision_id)

    # ------------------------------------------------------------ timers

    async def _timer_loop(self, every: float) -> None:
        while True:
            try:
                if await self.approvals.expire_due():
                    self.on_change()
                for hook in self.tick_hooks:
                    if await hook():
                        self.on_change()
                await self._heartbeat()
            except Exception:
                log.exception("timer loop error")
            await asyncio.sleep(every)

    async def _heartbeat(self) -> None:
        async with self.db.write() as conn:
            await repo.set_meta(conn, "heartbeat", self.clock().isoformat())
