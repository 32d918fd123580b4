"""Settings -> decision engine, executor and playbook store, ready to wire."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.decisions import playbooks as pb
from bot.decisions.consensus import load_engines
from bot.decisions.engine import ConsensusSetup, DecisionEngine
from bot.decisions.knowledge import Embedder, Knowledge
from bot.decisions.llm import LlmProposer
from bot.decisions.redact import Redactor
from bot.decisions.rules import RuleEngine
from bot.decisions.tools import ToolBox, ToolConfig
from bot.execution.executor import Executor, ExecutorConfig
from bot.incidents.risk import min_risks
from bot.models import Action, Alert, Incident, Proposal, ProposalSource, Risk
from storage.db import Database
from storage.playbooks import PlaybookRepo


def executor_config(s: Settings) -> ExecutorConfig:
    return ExecutorConfig(
        backend=s.executor,
        kubectl_path=s.kubectl_path,
        kubectl_context=s.kubectl_context or None,
        allowed_namespaces=frozenset(s.allowed_namespaces) or None,
        replicas_min=s.scale_min_replicas,
        replicas_max=s.scale_max_replicas,
        timeout=s.executor_timeout.total_seconds(),
        http_url=s.executor_http_url or None,
        http_secret=s.executor_http_secret.get_secret_value() or None,
    )


class PlaybookService:
    """What the rest of the bot needs from playbooks."""

    def __init__(self, repo: PlaybookRepo, db: Database) -> None:
        self.repo = repo
        self.db = db

    async def record_execution(self, playbook_id: int, success: bool, dry_run: bool) -> None:
        await self.repo.record_execution(playbook_id, success, dry_run=dry_run)

    async def create_from_decision(self, incident: Incident, action: Action, risk: Risk,
                                   description: str, created_by: str,
                                   alerts: list[Alert] | None = None) -> pb.Playbook:
        return await pb.create_from_decision(
            self.repo, incident, action, risk, description, created_by, alerts or []
        )


@dataclass
class DecisionStack:
    engine: DecisionEngine
    executor: Executor
    playbooks: PlaybookService
    auto_approver: Any


def tool_config(s: Settings, cfg: ExecutorConfig) -> ToolConfig:
    kubectl = s.executor == "kubectl" or shutil.which(s.kubectl_path) is not None
    return ToolConfig(
        kubectl_path=s.kubectl_path, kubectl_context=s.kubectl_context or None,
        kubectl=kubectl, allowed_namespaces=cfg.allowed_namespaces,
        prometheus_url=s.prometheus_url, timeout=s.llm_tool_timeout.total_seconds(),
        output_max=s.llm_tool_output_max, max_calls=s.llm_tool_max_calls,
    )


def build_knowledge(s: Settings, db: Database, redactor: Redactor) -> Knowledge:
    embedder = None
    if s.embeddings_base_url and s.embeddings_model:
        embedder = Embedder(s.embeddings_base_url, s.embeddings_model,
                            s.embeddings_api_key.get_secret_value() or None, redactor,
                            timeout=s.kb_timeout.total_seconds())
    return Knowledge(db, s.kb_path, embedder=embedder, results=s.kb_results,
                     timeout=s.kb_timeout.total_seconds(), redactor=redactor)


def build_llms(s: Settings, cfg: ExecutorConfig, redactor: Redactor) -> tuple[
        LlmProposer | None, list[LlmProposer]]:
    """(the LLM of the cascade, the LLMs of a consensus round)."""
    timeout = s.decision_timeout.total_seconds()
    tools = ToolBox(tool_config(s, cfg), redactor) if s.llm_tools else None

    def proposer(base_url: str, model: str, key: str | None, name: str = "") -> LlmProposer:
        return LlmProposer(base_url, model, key, limits=cfg.limits, timeout=timeout,
                           redactor=redactor, tools=tools, name=name)

    key = s.llm_api_key.get_secret_value() or None
    llm = proposer(s.llm_base_url, s.llm_model, key) if s.llm_base_url and s.llm_model else None
    if s.consensus_path:
        voters = [proposer(e.base_url, e.model, e.api_key, e.name)
                  for e in load_engines(s.consensus_path)]
    elif s.consensus_models and s.llm_base_url:
        voters = [proposer(s.llm_base_url, m, key) for m in dict.fromkeys(s.consensus_models)]
    else:
        voters = []
    return llm, voters


def build_decision_stack(s: Settings, db: Database) -> DecisionStack:
    cfg = executor_config(s)
    repo = PlaybookRepo(db)
    rules = RuleEngine.from_path(s.rules_path or None, cfg.limits, s.locale)
    redactor = Redactor.from_path(s.llm_redact_path or None)
    llm, voters = build_llms(s, cfg, redactor)
    knowledge = build_knowledge(s, db, redactor) if s.kb_enabled else None
    engine = DecisionEngine(
        rules, llm, repo, cfg, min_risks(), timeout=s.decision_timeout.total_seconds(),
        locale=s.locale, knowledge=knowledge,
        consensus=ConsensusSetup(voters, s.consensus_severity),
        critical_namespaces=frozenset(s.critical_namespaces),
    )

    async def auto_approver(playbook_id: int | None, proposal: Proposal) -> str | None:
        """The reason to auto-approve, or None. Only proven low-risk playbooks qualify."""
        if playbook_id is None or proposal.source is not ProposalSource.PLAYBOOK:
            return None
        if proposal.consensus is not None and proposal.consensus.disagreement:
            return None  # engines disagree: a person decides
        playbook = await repo.get(playbook_id)
        if playbook is None:
            return None
        ok, why = pb.auto_approve_eligible(
            playbook, proposal.risk, s.auto_approve_min_runs, locale=s.locale
        )
        return why if ok else None

    return DecisionStack(engine, Executor(cfg), PlaybookService(repo, db), auto_approver)
