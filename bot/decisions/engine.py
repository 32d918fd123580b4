"""The decision cascade: playbook, then LLM, then rules.

The rule answer is computed first (cheap, always available). The playbook and
LLM stage runs under one timeout; past it, or on any error, the rule answer
stands. Whatever is chosen goes through the same gate: risk raised to the
verb's minimum, action validated, and the exact effect described. A proposal
that fails validation becomes an invalid reason — nothing to approve. Texts the engine
adds itself come from templates/<locale>/decisions/*.html.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.decisions.llm import LlmProposer
from bot.decisions.playbooks import best_match, playbook_action, playbook_proposal
from bot.decisions.rules import RuleEngine, RuleOutcome, invalid_reason
from bot.execution.executor import ExecutorConfig, describe
from bot.execution.names import InvalidAction
from bot.incidents.risk import DEFAULT_MIN_RISK, effective_risk
from bot.models import Alert, Incident, Proposal, Risk, Verb
from storage.playbooks import PlaybookRepo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Analysis:
    proposal: Proposal | None  # None only when invalid_reason is set
    invalid_reason: str | None
    playbook_id: int | None  # set when a playbook was chosen (for stats and auto-approve)
    effect: str | None  # describe(): the command or request approving runs
    similarity: float | None = None  # of the chosen playbook


@dataclass(frozen=True)
class _Choice:
    proposal: Proposal
    playbook_id: int | None = None
    similarity: float | None = None


class DecisionEngine:
    def __init__(
        self,
        rules: RuleEngine,
        llm: LlmProposer | None,
        playbooks: PlaybookRepo | None,
        executor_cfg: ExecutorConfig,
        min_risks: Mapping[Verb, Risk] = DEFAULT_MIN_RISK,
        timeout: float = 30,
        locale: str = "en",
    ) -> None:
        self.rules = rules
        self.llm = llm
        self.playbooks = playbooks
        self.executor_cfg = executor_cfg
        self.min_risks = min_risks
        self.timeout = timeout
        self.locale = locale

    async def analyze(self, incident: Incident, alerts: Sequence[Alert]) -> Analysis:
        ruled = self.rules.propose(incident, alerts)
        choice: _Choice | None = None
        try:
            async with asyncio.timeout(self.timeout):
                choice = await self._smarter(incident, alerts, ruled)
        except TimeoutError:
            log.warning(
                "analysis of %s took over %ss; using the rule answer", incident.id, self.timeout
            )
        except Exception:
            log.exception("playbook/LLM stage failed for %s; using the rule answer", incident.id)
        if choice is None:
            if ruled.proposal is None:
                return Analysis(None, ruled.invalid_reason, None, None)
            choice = _Choice(ruled.proposal)
        return self._gate(choice, incident)

    async def _smarter(
        self, incident: Incident, alerts: Sequence[Alert], ruled: RuleOutcome
    ) -> _Choice | None:
        if self.playbooks is not None:
            match = best_match(await self.playbooks.list_all(), incident, alerts)
            if match is not None:
                playbook, score = match
                action = playbook_action(playbook, incident, alerts)
                if action is not None:
                    offer = playbook_proposal(playbook, score, action, self.locale)
                    return _Choice(offer, playbook.id, score)
                log.info("playbook %s matches %s but no target label", playbook.name, incident.id)
        if self.llm is not None:
            proposal = await self.llm.propose(incident, alerts, ruled.proposal)
            if proposal is not None:
                return _Choice(proposal)
        return None

    def _gate(self, choice: _Choice, incident: Incident) -> Analysis:
        """Risk floor, validation and the effect text, the same for every source."""
        proposal = choice.proposal
        action = proposal.action
        proposal = proposal.model_copy(
            update={"risk": effective_risk(action, proposal.risk, self.min_risks)}
        )
        effect = None
        if action is not None:
            try:
                # describe() validates (names, allowlist, limits) before it builds anything.
                effect = describe(action, self.executor_cfg, incident_id=incident.id)
            except InvalidAction as exc:
                reason = invalid_reason(
                    proposal.source, proposal.source_name, exc, self.locale
                )
                return Analysis(None, reason, choice.playbook_id, None)
        return Analysis(proposal, None, choice.playbook_id, effect, choice.similarity)
