"""Several opinions where it matters: for severe incidents, every engine is asked.

Engines: the LLMs (CONSENSUS_MODELS on LLM_BASE_URL, or the [[engine]] entries of
CONSENSUS_PATH, or just LLM_MODEL), a matching playbook, and the rules. The LLMs are
asked in parallel within what is left of DECISION_TIMEOUT; one that times out or fails
counts as absent, and the card says so. Two engines agree when they propose the same
verb, target, namespace and parameters; "no action" is an answer too. The proposal is
the answer most engines give (ties: the lower-risk one, then engine order), in the words of
the playbook when one agrees; any disagreement raises its risk one level and rules out
auto-approval.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.decisions.knowledge import Lookup
from bot.decisions.llm import LlmProposer
from bot.models import (
    Alert,
    Consensus,
    Dissent,
    Incident,
    Proposal,
    ProposalSource,
    severity_rank,
)

MARGIN = 0.9  # share of the remaining time an LLM may use, so the vote still happens


def applies(severity: str, threshold: str) -> bool:
    """Whether an incident of `severity` is at or above CONSENSUS_SEVERITY."""
    return severity_rank(severity) >= severity_rank(threshold)


class EngineSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key_env: str = ""

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None if self.api_key_env else None


class _EngineFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engine: list[EngineSpec]


class ConsensusFileError(ValueError):
    """CONSENSUS_PATH cannot be used; the message names the file and the problem."""


def load_engines(path: str | Path) -> list[EngineSpec]:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        engines = _EngineFile.model_validate(data).engine
    except OSError as exc:
        raise ConsensusFileError(f"{path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ConsensusFileError(f"{path}: {exc}") from exc
    names = [e.name for e in engines]
    if len(set(names)) != len(names):
        raise ConsensusFileError(f"{path}: engine names must be unique")
    return engines


@dataclass(frozen=True)
class Opinion:
    engine: str
    source: ProposalSource
    proposal: Proposal | None
    absent_reason: str = ""  # set when proposal is None
    playbook_id: int | None = None


def _key(p: Proposal) -> tuple[object, ...] | None:
    a = p.action
    if a is None:
        return None
    return (a.kind, a.verb, a.target_kind, a.target_name, a.namespace,
            tuple(sorted((k, str(v)) for k, v in a.params.items())))


def action_line(p: Proposal | None) -> str:
    if p is None or p.action is None:
        return ""
    a = p.action
    params = " ".join(f"{k}={v}" for k, v in sorted(a.params.items()))
    return f"{a.verb} {a.target_kind}/{a.target_name} -n {a.namespace}" + (
        f" {params}" if params else "")


@dataclass(frozen=True)
class Verdict:
    proposal: Proposal
    playbook_id: int | None


def decide(opinions: Sequence[Opinion]) -> Verdict | None:
    """The majority answer with its Consensus, or None when no engine answered."""
    present = [(i, o) for i, o in enumerate(opinions) if o.proposal is not None]
    if not present:
        return None
    groups: dict[tuple[object, ...] | None, list[int]] = {}
    for i, o in present:
        assert o.proposal is not None
        groups.setdefault(_key(o.proposal), []).append(i)

    def rank(members: list[int]) -> tuple[int, int, int]:
        risk = min(opinions[i].proposal.risk.rank for i in members)  # type: ignore[union-attr]
        return (-len(members), risk, members[0])

    winner = min(groups.values(), key=rank)
    # A playbook that agrees with the majority speaks for it: its record is the evidence,
    # and only its answer may auto-approve (when nobody disagrees).
    lead = next((opinions[i] for i in winner if opinions[i].playbook_id is not None),
                opinions[winner[0]])
    assert lead.proposal is not None
    risk = lead.proposal.risk
    for i in winner:  # agreeing engines: the highest risk any of them saw
        risk = risk.at_least(opinions[i].proposal.risk)  # type: ignore[union-attr]
    answers = [
        Dissent(
            engine=o.engine, source=o.source, action_line=action_line(o.proposal),
            absent=o.proposal is None, absent_reason=o.absent_reason,
            risk=o.proposal.risk if o.proposal else None,
            summary=o.proposal.summary if o.proposal else "",
            reasoning=o.proposal.reasoning if o.proposal else "",
            agrees=i in winner,
        )
        for i, o in enumerate(opinions)
    ]
    consensus = Consensus(agree=len(winner), asked=len(opinions), answers=answers)
    if consensus.disagreement:
        consensus.raised_from = risk
        risk = risk.raised()
    proposal = lead.proposal.model_copy(update={"risk": risk, "consensus": consensus})
    return Verdict(proposal, lead.playbook_id)


async def ask_all(
    llms: Sequence[LlmProposer],
    incident: Incident,
    alerts: Sequence[Alert],
    suggestion: Proposal | None,
    related: Lookup | None,
    remaining: float,
) -> list[Opinion]:
    """Every LLM in parallel within `remaining` seconds; late or failed ones are absent."""
    budget = max(0.05, remaining * MARGIN)
    results = await asyncio.gather(*(
        llm.answer(incident, alerts, suggestion, related, budget=budget) for llm in llms
    ))
    return [
        Opinion(llm.name, ProposalSource.LLM, proposal, reason)
        for llm, (proposal, reason) in zip(llms, results, strict=True)
    ]
