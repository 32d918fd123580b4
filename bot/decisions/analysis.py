"""Analysis: each decision waiting in `analyzing` gets the engine's proposal.

The engine may take long (an LLM), so it runs outside any transaction; its
answer is stored by the state machine's compare-and-set, which loses quietly
if the decision moved meanwhile (the incident resolved, a re-analysis).
"""

from __future__ import annotations

import asyncio
import logging
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
    ) -> None:
        self.db = db
        self.engine = engine
        self.clock = clock
        self.voice = voice
        self.critical_approvals = critical_approvals
        self.auto_approver = auto_approver
        self._wake = db.wake_event(Wake.ANALYSIS)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            polling.run_forever("analysis", self.analyze_pending, self._wake, POLL_EVERY),
            name="analysis",
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def analyze_pending(self) -> int:
        async with self.db.read() as conn:
            waiting = await repo.decisions_in_state(conn, DecisionState.ANALYZING)
        for decision in waiting:
            await self.analyze_one(decision.id, decision.incident_id)
        return len(waiting)

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
