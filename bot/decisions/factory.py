"""Settings -> decision engine, executor and playbook store, ready to wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.decisions import playbooks as pb
from bot.decisions.engine import DecisionEngine
from bot.decisions.llm import LlmProposer
from bot.decisions.rules import RuleEngine
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


def build_decision_stack(s: Settings, db: Database) -> DecisionStack:
    cfg = executor_config(s)
    repo = PlaybookRepo(db)
    rules = RuleEngine.from_path(s.rules_path or None, cfg.limits, s.locale)
    llm = None
    if s.llm_base_url and s.llm_model:
        llm = LlmProposer(
            s.llm_base_url, s.llm_model, s.llm_api_key.get_secret_value() or None,
            limits=cfg.limits, timeout=s.decision_timeout.total_seconds(),
        )
    engine = DecisionEngine(
        rules, llm, repo, cfg, min_risks(), timeout=s.decision_timeout.total_seconds(),
        locale=s.locale,
    )

    async def auto_approver(playbook_id: int | None, proposal: Proposal) -> str | None:
        """The reason to auto-approve, or None. Only proven low-risk playbooks qualify."""
        if playbook_id is None or proposal.source is not ProposalSource.PLAYBOOK:
            return None
        playbook = await repo.get(playbook_id)
        if playbook is None:
            return None
        ok, why = pb.auto_approve_eligible(
            playbook, proposal.risk, s.auto_approve_min_runs, locale=s.locale
        )
        return why if ok else None

    return DecisionStack(engine, Executor(cfg), PlaybookService(repo, db), auto_approver)
