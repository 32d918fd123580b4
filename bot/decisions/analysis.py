"""Analysis: each decision waiting in `analyzing` gets the engine's proposal.

The engine may take long (an LLM), so it runs outside any transaction; its
answer is stored by the state machine's compare-and-set, which loses quietly
if the decision moved meanwhile (the incident resolved, a re-analysis).
Decisions are analysed side by side (at most ANALYSIS_CONCURRENCY at once), so a model
that hangs until DECISION_TIMEOUT holds up only its own incident, not the ones behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from bot import logs, polling, texts
from bot.cards.notes import Voice
from bot.incidents.risk import required_approvals
from bot.incidents.states import Event, transition
from bot.models import Alert, DecisionState, Incident, Proposal
from storage import repo
from storage.db import Database, Wake

log = logging.getLogger(__name__)

POLL_EVERY = 2.0  # seconds; decisions committed by another process
CONCURRENCY = 8  # analyses at once; each may hold model requests and tool subprocesses


class Engine(Protocol):
    async def analyze(self, incident: Incident, alerts: list[Alert]) -> Any: ...


AutoApprover = Callable[[int | None, Proposal], Awaitable[str | None]]


class AnalysisWorker:
    def __init__(
        self,
        db: Database,
        engine: Engine,
        clock: Callable[[], datetime],
        voice: Voice,
        *,
        critical_approvals: int = 2,
        auto_approver: AutoApprover | None = None,
        concurrency: int = CONCURRENCY,
        yield_to: polling.YieldTo | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("analysis concurrency must be at least 1")
        self.db = db
        self.engine = engine
        self.clock = clock
        self.voice = voice
        self.critical_approvals = critical_approvals
        self.auto_approver = auto_approver
        self._wake = db.wake_event(Wake.ANALYSIS)
        # Each decision's analysis is a task of the stage, keyed by the decision's id.
        self._stage = polling.Stage("analysis", self.analyze_pending, self._wake, POLL_EVERY)
        self._slots = asyncio.Semaphore(concurrency)
        self._yield_to = yield_to
        # A decision is analysed from its insert on, and ids only grow: a poll woken by a
        # commit reads the decisions above the last one started; a full read every
        # POLL_EVERY finds the rest (another process's, one whose analysis failed). In a
        # storm thousands wait, and every commit wakes the poll.
        self._started_up_to = 0
        self._full_read_at = 0.0

    def start(self) -> None:
        self._full_read_at = 0.0  # (again, after stepping down) everything waiting is looked at
        self._stage.start()

    async def stop(self) -> None:
        await self._stage.stop()

    async def analyze_pending(self) -> int:
        """Start an analysis for each waiting decision not already under way; how many."""
        # Taken before the read: an analysis that ends after it has committed its outcome
        # before ending, so the read cannot see its decision as still waiting.
        running = self._stage.running
        busy = set(running)
        after = self._started_up_to
        if time.monotonic() >= self._full_read_at:
            after, self._full_read_at = 0, time.monotonic() + POLL_EVERY
        async with self.db.read() as conn:
            waiting = await repo.decision_ids_in_state(conn, DecisionState.ANALYZING, after)
        started = 0
        for decision_id, incident_id in waiting:
            self._started_up_to = max(self._started_up_to, decision_id)
            if decision_id in busy or decision_id in running:
                continue
            self._stage.spawn(decision_id, self._analyze_in_slot(decision_id, incident_id),
                              name=f"analysis-{decision_id}")
            started += 1
        return started

    async def drain(self) -> None:
        """Wait for the analyses under way (tests, benchmarks)."""
        await self._stage.drain()

    async def _analyze_in_slot(self, decision_id: int, incident_id: str) -> None:
        async with self._slots:
            if self._yield_to is not None:
                # A rule's proposal takes CPU the event loop shares with delivery: in a storm
                # the cards go first, analysis right after (their edits wait in the background
                # lane anyway; a card waiting for its proposal is not due, so not waited for).
                await self._yield_to()
            try:
                await self.analyze_one(decision_id, incident_id)
            except Exception:  # one decision's trouble must not end the others
                log.exception("analysis of decision %s failed", decision_id)

    async def analyze_one(self, decision_id: int, incident_id: str) -> None:
        with logs.about(incident_id=incident_id, decision_id=decision_id):
            await self._analyze(decision_id, incident_id)

    async def _analyze(self, decision_id: int, incident_id: str) -> None:
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
                                               self.voice.locale, error=str(exc)))
        auto = None
        if (self.auto_approver is not None and analysis is not None
                and analysis.proposal is not None and analysis.proposal.action is not None):
            auto = await self.auto_approver(analysis.playbook_id, analysis.proposal)
        now = self.clock()
        async with self.db.write() as conn:
            if analysis is None or analysis.proposal is None:
                reason = failure or (analysis.invalid_reason if analysis else None) or ""
                await transition(
                    conn, decision_id, Event.FOUND_INVALID, now, self.voice,
                    fields={"invalid_reason": reason,
                            "proposal": analysis.proposal if analysis else None},
                )
                return
            proposal: Proposal = analysis.proposal
            fields: dict[str, Any] = {
                "proposal": proposal, "effect": analysis.effect,
                "playbook_id": analysis.playbook_id,
                "required_approvals": required_approvals(proposal.risk,
                                                         self.critical_approvals),
            }
            if not auto:
                await transition(conn, decision_id, Event.ANALYZED, now, self.voice,
                                 fields=fields)
                return
            # Committing `approved` schedules the execution.
            await transition(
                conn, decision_id, Event.AUTO_APPROVED, now, self.voice,
                fields={**fields, "auto_approved": True, "decided_by": "opsgate",
                        "decided_at": now, "reason": str(auto)},
                detail="auto-approved",
                note={"names": [], "at": now, "auto_reason": str(auto)},
            )
