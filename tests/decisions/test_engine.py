import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
from fake_llm import fake_llm_server
from helpers import CRASHLOOP, DISK_FULL, ERROR_RATE, alert, incident_for, playbook

from bot.decisions.engine import DecisionEngine
from bot.decisions.llm import LlmProposer
from bot.decisions.rules import RuleEngine, default_rules
from bot.execution.executor import ExecutorConfig
from bot.incidents.risk import min_risks
from bot.models import (
    Action,
    Alert,
    Incident,
    Proposal,
    ProposalSource,
    Risk,
    Unanswered,
    Verb,
)
from bot.playbook_types import ActionTemplate, Symptoms
from storage.db import Database
from storage.playbooks import PlaybookRepo

DRY_RUN = ExecutorConfig()
LLM_ACTION = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart-api", namespace="shop")


class StubLlm(LlmProposer):
    """Answers with `proposal`, or waits forever on `gate` when `hang` is set."""

    def __init__(self, proposal: Proposal | None = None, hang: bool = False) -> None:
        super().__init__("http://unused", "stub-model")
        self.proposal = proposal
        self.hang = hang
        self.gate = asyncio.Event()
        self.calls: list[Proposal | None] = []

    async def answer(
        self, incident: Incident, alerts: Sequence[Alert], suggestion: Proposal | None,
        related: object = None, *, budget: float | None = None,
    ) -> tuple[Proposal | None, str]:
        self.calls.append(suggestion)
        if self.hang:
            await self.gate.wait()
        return self.proposal, "" if self.proposal else "unusable"


def llm_proposal(action: Action | None = LLM_ACTION, risk: Risk = Risk.MEDIUM) -> Proposal:
    return Proposal(
        action=action,
        risk=risk,
        summary="llm says",
        reasoning="because",
        confidence=0.6,
        source=ProposalSource.LLM,
        source_name="stub-model",
    )


@pytest.fixture
async def repo(tmp_path) -> AsyncIterator[PlaybookRepo]:
    db = Database(tmp_path / "t.db")
    await db.open()
    yield PlaybookRepo(db)
    await db.close()


def engine(llm=None, playbooks=None, cfg=DRY_RUN, **kw) -> DecisionEngine:
    limits = cfg.limits
    return DecisionEngine(RuleEngine(default_rules(), limits), llm, playbooks, cfg, **kw)


def case(labels: dict[str, str]):
    alerts = [alert(labels)]
    return incident_for(alerts), alerts


async def test_rules_alone() -> None:
    result = await engine().analyze(*case(CRASHLOOP))
    assert result.invalid_reason is None
    assert result.proposal is not None
    assert result.proposal.source is ProposalSource.RULE
    assert result.effect == "kubectl rollout restart deployment/cart --namespace shop"
    assert result.playbook_id is None


async def test_no_action_has_no_effect() -> None:
    result = await engine().analyze(*case(DISK_FULL))
    assert result.proposal is not None and result.proposal.action is None
    assert result.effect is None and result.invalid_reason is None


async def test_llm_wins_over_rules_and_sees_rule_suggestion() -> None:
    llm = StubLlm(llm_proposal())
    result = await engine(llm).analyze(*case(CRASHLOOP))
    assert result.proposal is not None and result.proposal.source is ProposalSource.LLM
    assert result.effect == "kubectl rollout restart deployment/cart-api --namespace shop"
    assert llm.calls[0] is not None and llm.calls[0].source_name == "pod-crash"


async def test_llm_none_falls_back_to_rules() -> None:
    result = await engine(StubLlm(None)).analyze(*case(CRASHLOOP))
    assert result.proposal is not None and result.proposal.source is ProposalSource.RULE
    assert result.proposal.unanswered == [Unanswered(engine="stub-model", reason="unusable")]


async def test_playbook_wins_over_llm(repo: PlaybookRepo) -> None:
    pb = await repo.add(playbook(symptoms=Symptoms(alertnames=["LabPodCrashLooping"])))
    assert pb is not None
    llm = StubLlm(llm_proposal())
    result = await engine(llm, repo).analyze(*case(CRASHLOOP))
    assert result.proposal is not None
    assert result.proposal.source is ProposalSource.PLAYBOOK
    assert result.proposal.source_name == "crash-restart"
    assert result.playbook_id == pb.id
    assert result.similarity == 1.0
    assert llm.calls == []  # a playbook answer makes the LLM call unnecessary


async def test_playbook_below_threshold_goes_to_llm(repo: PlaybookRepo) -> None:
    await repo.add(
        playbook(symptoms=Symptoms(alertnames=["LabPodCrashLooping"], services=["other"]))
    )  # 0.80
    result = await engine(StubLlm(llm_proposal()), repo).analyze(*case(CRASHLOOP))
    assert result.proposal is not None and result.proposal.source is ProposalSource.LLM
    assert result.playbook_id is None


async def test_untrusted_playbook_goes_to_rules(repo: PlaybookRepo) -> None:
    pb = await repo.add(playbook(symptoms=Symptoms(alertnames=["LabPodCrashLooping"])))
    assert pb is not None and pb.id is not None
    for success in (True, False, False, True, True):  # 3/5 = 0.6
        await repo.record_execution(pb.id, success=success, dry_run=False)
    result = await engine(None, repo).analyze(*case(CRASHLOOP))
    assert result.proposal is not None and result.proposal.source is ProposalSource.RULE


async def test_timeout_falls_back_to_rule_answer(caplog) -> None:
    llm = StubLlm(llm_proposal(), hang=True)
    result = await engine(llm, timeout=0.2).analyze(*case(CRASHLOOP))
    assert llm.calls  # the LLM was asked, and never answered
    assert result.proposal is not None
    assert result.proposal.source is ProposalSource.RULE
    assert result.effect == "kubectl rollout restart deployment/cart --namespace shop"
    assert "using the rule answer" in caplog.text
    assert result.proposal.unanswered == [Unanswered(engine="stub-model", reason="timeout")]


async def test_stage_error_falls_back_to_rule_answer(repo: PlaybookRepo, monkeypatch) -> None:
    async def broken() -> list:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(repo, "list_all", broken)
    result = await engine(StubLlm(llm_proposal()), repo).analyze(*case(CRASHLOOP))
    assert result.proposal is not None and result.proposal.source is ProposalSource.RULE


async def test_risk_floor_applies_to_every_source() -> None:
    undo = Action(verb=Verb.ROLLOUT_UNDO, target_name="checkout", namespace="payments")
    result = await engine(StubLlm(llm_proposal(undo, Risk.LOW))).analyze(*case(ERROR_RATE))
    assert result.proposal is not None and result.proposal.risk is Risk.HIGH
    result = await engine(min_risks=min_risks({"rollout-restart": "critical"})).analyze(
        *case(CRASHLOOP)
    )
    assert result.proposal is not None and result.proposal.risk is Risk.CRITICAL


async def test_critical_namespace_makes_any_action_critical() -> None:
    plain = await engine().analyze(*case(CRASHLOOP))
    assert plain.proposal is not None and plain.proposal.risk is Risk.MEDIUM
    assert not plain.proposal.critical_namespace
    namespace = plain.proposal.action.namespace if plain.proposal.action else ""
    critical = await engine(critical_namespaces=frozenset({namespace, "payments"})).analyze(
        *case(CRASHLOOP)
    )
    assert critical.proposal is not None and critical.proposal.risk is Risk.CRITICAL
    assert critical.proposal.critical_namespace
    elsewhere = await engine(critical_namespaces=frozenset({"payments"})).analyze(
        *case(CRASHLOOP)
    )
    assert elsewhere.proposal is not None and elsewhere.proposal.risk is Risk.MEDIUM


async def test_rule_invalid_reason_passes_through() -> None:
    result = await engine().analyze(*case(CRASHLOOP | {"deployment": "api; rm -rf /"}))
    assert result.proposal is None and result.effect is None
    assert result.invalid_reason == (
        'rule pod-crash: deployment name "api; rm -rf /" is not a valid Kubernetes name'
    )


async def test_chosen_proposal_is_validated_again(repo: PlaybookRepo) -> None:
    cfg = ExecutorConfig(allowed_namespaces=frozenset({"shop"}))
    pb = await repo.add(
        playbook(
            symptoms=Symptoms(alertnames=["LabPodCrashLooping"]),
            action=ActionTemplate(verb=Verb.ROLLOUT_RESTART, namespace="kube-system"),
        )
    )
    assert pb is not None
    result = await engine(None, repo, cfg=cfg).analyze(*case(CRASHLOOP))
    assert result.proposal is None
    assert result.playbook_id == pb.id
    assert result.invalid_reason == (
        'playbook crash-restart: namespace "kube-system" is not in the allowed namespaces (shop)'
    )


async def test_effect_describes_http_backend() -> None:
    cfg = ExecutorConfig(backend="http", http_url="http://127.0.0.1:9/hook", http_secret="s")
    result = await engine(cfg=cfg).analyze(*case(CRASHLOOP))
    assert result.effect is not None
    assert result.effect.startswith("POST http://127.0.0.1:9/hook\n{")
    assert '"incident_id":"INC-TEST01"' in result.effect


async def test_with_real_llm_client_against_fake_server() -> None:
    async with fake_llm_server() as fake:
        fake.answer(
            {
                "action": LLM_ACTION.model_dump(mode="json"),
                "risk": "low",
                "reasoning": "restart the api",
                "confidence": 0.9,
            }
        )
        llm = LlmProposer(fake.url, "gpt-test", timeout=5)
        result = await engine(llm).analyze(*case(CRASHLOOP))
    assert result.proposal is not None
    assert result.proposal.source_name == "gpt-test"
    assert result.proposal.risk is Risk.MEDIUM  # raised to the restart minimum
    assert result.effect == "kubectl rollout restart deployment/cart-api --namespace shop"
