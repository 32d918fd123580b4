"""The decision cascade: playbook, then LLM, then rules; a vote for severe incidents.

The rule answer is computed first (cheap, always available). The playbook and
LLM stage runs under one timeout; past it, or on any error, the rule answer
stands. Whatever is chosen goes through the same gate: risk raised to the
verb's minimum, action validated, and the exact effect described. A proposal
that fails validation becomes an invalid reason — nothing to approve. Texts the engine
adds itself come from templates/<locale>/decisions/*.html.

Related knowledge (bot/decisions/knowledge.py) is looked up first, within its own
budget, and handed to the LLM(s); whatever wins carries it as evidence for Details.
At or above CONSENSUS_SEVERITY the engines vote instead (bot/decisions/consensus.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace

from bot.decisions.consensus import Opinion, applies, ask_all, decide
from bot.decisions.knowledge import Knowledge, Lookup
from bot.decisions.llm import LlmProposer
from bot.decisions.playbooks import best_match, playbook_action, playbook_proposal
from bot.decisions.rules import RuleEngine, RuleOutcome, invalid_reason
from bot.execution.executor import ExecutorConfig, describe
from bot.execution.names import InvalidAction
from bot.incidents.risk import DEFAULT_MIN_RISK, gate_risk
from bot.models import (
    Alert,
    Evidence,
    Incident,
    Proposal,
    ProposalSource,
    Risk,
    Unanswered,
    Verb,
)
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


@dataclass(frozen=True)
class ConsensusSetup:
    """Who is asked for severe incidents (bot/decisions/consensus.py)."""

    llms: Sequence[LlmProposer]
    severity: str = "critical"


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
        knowledge: Knowledge | None = None,
        consensus: ConsensusSetup | None = None,
        critical_namespaces: Set[str] = frozenset(),
    ) -> None:
        self.rules = rules
        self.llm = llm
        self.playbooks = playbooks
        self.executor_cfg = executor_cfg
        self.min_risks = min_risks
        self.timeout = timeout
        self.locale = locale
        self.knowledge = knowledge
        self.consensus = consensus
        self.critical_namespaces = critical_namespaces

    async def analyze(self, incident: Incident, alerts: Sequence[Alert]) -> Analysis:
        ruled = self.rules.propose(incident, alerts)
        choice: _Choice | None = None
        related: list[Lookup] = []  # filled as soon as the lookup is done
        asked: dict[str, str] = {}  # the cascade's LLM -> why it gave nothing ("": asking)
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                choice = await self._smarter(incident, alerts, ruled, related, asked, deadline)
        except TimeoutError:
            log.warning(
                "analysis of %s took over %ss; using the rule answer", incident.id, self.timeout
            )
            asked.update({name: "timeout" for name, why in asked.items() if not why})
        except Exception:
            log.exception("playbook/LLM stage failed for %s; using the rule answer", incident.id)
            asked.update({name: "error" for name, why in asked.items() if not why})
        if choice is None:
            if ruled.proposal is None:
                return Analysis(None, ruled.invalid_reason, None, None)
            unanswered = [Unanswered(engine=n, reason=why) for n, why in asked.items()]
            choice = _Choice(ruled.proposal.model_copy(update={"unanswered": unanswered}))
        if related and choice.proposal.evidence is None:
            lookup = related[0]
            evidence = Evidence(related=lookup.items, related_note=lookup.note)
            choice = replace(choice, proposal=choice.proposal.model_copy(
                update={"evidence": evidence}))
        return self._gate(choice, incident)

    async def _smarter(
        self, incident: Incident, alerts: Sequence[Alert], ruled: RuleOutcome,
        related: list[Lookup], asked: dict[str, str], deadline: float,
    ) -> _Choice | None:
        offer: _Choice | None = None
        if self.playbooks is not None:
            match = best_match(await self.playbooks.list_all(), incident, alerts)
            if match is not None:
                playbook, score = match
                action = playbook_action(playbook, incident, alerts)
                if action is not None:
                    offered = playbook_proposal(playbook, score, action, self.locale)
                    offer = _Choice(offered, playbook.id, score)
                else:
                    log.info("playbook %s matches %s but no target label", playbook.name,
                             incident.id)
        lookup = None
        if self.knowledge is not None:
            lookup = await self.knowledge.related(incident, alerts)
            related.append(lookup)
        setup = self.consensus
        if setup is not None and applies(incident.severity, setup.severity):
            llms = list(setup.llms) or ([self.llm] if self.llm is not None else [])
            if len(llms) + (offer is not None) + 1 >= 2:
                return await self._vote(incident, alerts, ruled, offer, llms, lookup, deadline)
        if offer is not None:
            return offer
        if self.llm is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            asked[self.llm.name] = ""
            proposal, why = await self.llm.answer(incident, alerts, ruled.proposal, lookup,
                                                  budget=remaining)
            if proposal is not None:
                del asked[self.llm.name]
                return _Choice(proposal)
            asked[self.llm.name] = why
        return None

    async def _vote(
        self, incident: Incident, alerts: Sequence[Alert], ruled: RuleOutcome,
        offer: _Choice | None, llms: Sequence[LlmProposer], lookup: Lookup | None,
        deadline: float,
    ) -> _Choice | None:
        remaining = deadline - asyncio.get_running_loop().time()
        opinions = await ask_all(llms, incident, alerts, ruled.proposal, lookup, remaining)
        if offer is not None:
            opinions.append(Opinion(f"playbook: {offer.proposal.source_name}",
                                    ProposalSource.PLAYBOOK, offer.proposal,
                                    playbook_id=offer.playbook_id))
        rule_name = ruled.proposal.source_name if ruled.proposal else ruled.rule_name
        opinions.append(Opinion(f"rules: {rule_name}" if rule_name else "rules",
                                ProposalSource.RULE, ruled.proposal,
                                "" if ruled.proposal else "invalid"))
        verdict = decide(opinions)
        if verdict is None:
            return None
        similarity = offer.similarity if offer and verdict.playbook_id is not None else None
        return _Choice(verdict.proposal, verdict.playbook_id, similarity)

    def _gate(self, choice: _Choice, incident: Incident) -> Analysis:
        """Risk floor, validation and the effect text, the same for every source."""
        proposal = gate_risk(choice.proposal, self.min_risks, self.critical_namespaces)
        action = proposal.action
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
