"""Execution: every approved decision runs, at most once.

Taking a decision is the compare-and-set approved -> executing, so of two
runners (two processes on one database) only one runs it, and only while its
process holds the leader lease (the fence, checked in the same transaction). A
decision left `executing` by a crash is never run again (bot.incidents.recovery).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from bot import logs, polling
from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from bot.metrics import Metrics
from bot.models import Action, Decision, DecisionState
from storage import outbox, repo
from storage.db import Database, Wake
from storage.repo.lease import Fence

log = logging.getLogger(__name__)

POLL_EVERY = 2.0  # seconds; approvals committed by another process


class ExecutorLike(Protocol):
    async def run(
        self, action: Action, *, incident_id: str | None = None, decision_id: int | None = None
    ) -> Any: ...


class PlaybookStats(Protocol):
    async def record_execution(self, playbook_id: int, success: bool, dry_run: bool) -> None: ...


class ExecutionRunner:
    def __init__(
        self,
        db: Database,
        executor: ExecutorLike,
        clock: Callable[[], datetime],
        voice: Voice,
        playbooks: PlaybookStats | None = None,
        metrics: Metrics | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.db = db
        self.fence = fence
        self.metrics = metrics or Metrics()
        self.executor = executor
        self.clock = clock
        self.voice = voice
        self.playbooks = playbooks
        self._wake = db.wake_event(Wake.EXECUTION)
        # Each decision's run is a task of the stage, keyed by the decision's id.
        self._stage = polling.Stage("execution", self.run_approved, self._wake, POLL_EVERY)

    def start(self) -> None:
        self._stage.start()

    async def stop(self) -> None:
        """Executions cut short here are found `executing` at the next start."""
        await self._stage.stop()

    async def run_approved(self) -> int:
        """Start every approved decision not already running; they run side by side."""
        async with self.db.read() as conn:
            approved = await repo.decisions_in_state(conn, DecisionState.APPROVED)
        for decision in approved:
            if decision.id not in self._stage.running:
                self._stage.spawn(decision.id, self.execute(decision.id),
                                  name=f"execute-{decision.id}")
        return len(approved)

    async def execute(self, decision_id: int) -> bool:
        """Run an approved decision at most once. True if this call ran it. Whoever approved
        it waits for its progress and outcome: those go in the people lane."""
        with outbox.people_waiting():
            return await self._execute(decision_id)

    async def _execute(self, decision_id: int) -> bool:
        async with self.db.write() as conn:
            if self.fence is not None and not await self.fence(conn):
                return False  # not the leader (any more): the leader runs it
            decision = await transition(conn, decision_id, Event.START, self.clock(), self.voice)
        if decision is None:
            return False
        with logs.about(incident_id=decision.incident_id, decision_id=decision_id):
            return await self._run(decision)

    async def _run(self, decision: Decision) -> bool:
        decision_id = decision.id
        assert decision.proposal is not None and decision.proposal.action is not None
        try:
            result = await self.executor.run(
                decision.proposal.action, incident_id=decision.incident_id,
                decision_id=decision_id,
            )
            result_data = result.model_dump(mode="json")
            ok = bool(result.ok)
            dry_run = bool(getattr(result, "dry_run", False))
            self.metrics.executor_runs.labels("succeeded" if ok else "failed").inc()
        except Exception as exc:
            log.exception("executor raised for decision %s", decision_id)
            result_data = {"ok": False, "error": f"executor error: {exc}"}
            ok, dry_run = False, False
            self.metrics.executor_runs.labels("error").inc()
        async with self.db.read() as conn:
            effect, playbook_id = await repo.decision_extras(conn, decision_id)
        error = str(result_data.get("error") or "")
        won = await self._record(
            decision_id, Event.SUCCEED if ok else Event.FAIL, fields={"result": result_data},
            detail=error[:500] or None,
            note={"succeeded": ok, "unknown": False, "dry_run": dry_run, "effect": effect,
                  "output": str(result_data.get("output") or ""), "error": error},
        )
        if won and self.playbooks is not None and playbook_id is not None:
            await self.playbooks.record_execution(playbook_id, ok, dry_run)
        return True

    async def _record(self, decision_id: int, event: Event, **kw: Any) -> bool:
        """Store the outcome of an action that ran. The action cannot be run again, so a
        failed write (rolled back whole) is tried once more before giving up loudly; a
        decision left `executing` is found by recovery as "outcome unknown"."""
        for attempt in (1, 2):
            try:
                async with self.db.write() as conn:
                    done = await transition(conn, decision_id, event, self.clock(), self.voice,
                                            **kw)
                return done is not None
            except Exception:
                if attempt == 2:
                    log.critical("outcome of decision %s could not be stored: %s",
                                 decision_id, kw.get("fields"))
                    raise
                log.exception("storing the outcome of decision %s failed; trying again",
                              decision_id)
        return False
