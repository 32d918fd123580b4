"""The texts the decision engine adds itself come from templates/<locale>/decisions/."""

import re
from pathlib import Path
from typing import Any

import pytest
from helpers import CRASHLOOP, alert, incident_for, playbook
from jinja2.runtime import Macro

from bot import texts
from bot.config import Settings
from bot.decisions import factory
from bot.decisions.engine import DecisionEngine
from bot.decisions.playbooks import (
    auto_approve_eligible,
    playbook_proposal,
)
from bot.decisions.rules import (
    TEXT_KEYS,
    RuleEngine,
    conservative_proposal,
    decision_text,
    default_rules,
    invalid_reason,
)
from bot.execution.executor import ExecutorConfig
from bot.execution.names import InvalidAction, validate_action
from bot.models import Action, ProposalSource, Risk, Verb
from bot.playbook_types import ActionTemplate, Symptoms
from storage.db import Database
from storage.playbooks import PlaybookRepo

_CJK = re.compile(r"[\u4e00-\u9fff]")
DECISIONS = Path(factory.__file__).parent

# One set of values per key, as the Python side passes them.
_EXAMPLES: dict[str, dict[str, Any]] = {
    "manual_summary": {"alertname": "KubePodCrashLooping"},
    "no_rule_matched": {},
    "rule_engine_failed": {},
    "no_target_label": {"labels": ("deployment", "service", "app")},
    "no_namespace_label": {},
    "replicas_at_cap": {"current": 10},
    "replicas_unknown": {},
    "playbook_summary": {"name": "crash-restart"},
    "playbook_reasoning": {"name": "crash-restart", "similarity": 0.85, "runs": 4,
                           "successes": 3},
    "auto_only_low_risk": {"risk": "high"},
    "auto_needs_runs": {"successes": 4, "min_runs": 5},
    "auto_recent_failure": {"window": 5, "recent": "SSFSS"},
    "auto_eligible": {"successes": 6, "window": 5},
}


def _macros(file: str, locale: str) -> dict[str, Macro]:
    module = texts.ENV.get_template(f"{locale}/decisions/{file}").module
    return {k: v for k, v in vars(module).items() if isinstance(v, Macro)}


def test_text_keys_list_every_key_the_package_renders() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in DECISIONS.glob("*.py"))
    used = set(re.findall(r'decision_text\(\s*"(\w+)"', source))
    used |= set(re.findall(r'conservative_proposal\(\s*\w+,\s*"(\w+)"', source))
    assert used == set(TEXT_KEYS)
    assert len(TEXT_KEYS) == len(set(TEXT_KEYS))
    assert set(_EXAMPLES) == set(TEXT_KEYS)


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_every_key_has_a_macro_in_each_locale(locale: str) -> None:
    # no_safe_action is the files' own building block, used by the other macros
    assert set(_macros("proposals.html", locale)) == set(TEXT_KEYS) | {"no_safe_action"}


@pytest.mark.parametrize("key", TEXT_KEYS)
def test_decision_text_per_locale(key: str) -> None:
    params = _EXAMPLES[key]
    for locale in ("en", "zh-TW"):
        assert set(_macros("proposals.html", locale)[key].arguments) == set(params), locale
    en, zh = decision_text(key, "en", **params), decision_text(key, "zh-TW", **params)
    assert en and not _CJK.search(en)
    assert _CJK.search(zh), zh
    assert decision_text(key, "zh_tw", **params) == zh
    assert decision_text(key, "fr", **params) == en
    for name, value in params.items():
        if name in ("risk", "similarity"):
            continue  # translated (zh-TW) and formatted ("0.85"), see below
        for item in value if isinstance(value, tuple) else [value]:
            assert str(item) in en
            assert str(item) in zh
    assert "\n" not in en + zh
    assert "  " not in en + zh


def test_formatted_values() -> None:
    assert "(similarity 0.85; 3/4 successful runs)" in decision_text(
        "playbook_reasoning", "en", **_EXAMPLES["playbook_reasoning"]
    )
    assert "not run yet" in decision_text(
        "playbook_reasoning", "en", name="x", similarity=1.0, runs=0, successes=0
    )
    assert "相似度 0.85" in decision_text(
        "playbook_reasoning", "zh-TW", **_EXAMPLES["playbook_reasoning"]
    )
    assert decision_text("auto_only_low_risk", "zh-TW", risk="high").startswith("風險為高")


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_hostile_values_come_back_as_plain_text(locale: str) -> None:
    hostile = "<script>&"
    assert hostile in decision_text("manual_summary", locale, alertname=hostile)
    assert "&lt;b&gt;" in decision_text("playbook_summary", locale, name="&lt;b&gt;")
    alerts = [alert(CRASHLOOP | {"deployment": hostile})]
    outcome = RuleEngine(default_rules(), locale=locale).propose(incident_for(alerts), alerts)
    assert outcome.proposal is None and outcome.invalid_reason is not None
    assert f'"{hostile}"' in outcome.invalid_reason
    assert "&amp;" not in outcome.invalid_reason


# ------------------------------------------------------------------ where they are used


def test_invalid_reason_names_the_source() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(
            Action(verb=Verb.ROLLOUT_RESTART, target_name="api", namespace="kube-system"),
            frozenset({"shop"}),
            (1, 20),
        )
    exc = err.value
    assert invalid_reason(ProposalSource.LLM, "", exc, "en") == (
        'llm: namespace "kube-system" is not in the allowed namespaces (shop)'
    )
    assert invalid_reason(ProposalSource.PLAYBOOK, "p1", exc, "zh-TW") == (
        '劇本 p1：命名空間 "kube-system" 不在允許的命名空間中（shop）'
    )
    assert invalid_reason(ProposalSource.RULE, "r", exc, "zh-TW").startswith("規則 r：")


def test_rule_engine_in_zh_tw() -> None:
    engine = RuleEngine(default_rules(), locale="zh-TW")
    alerts = [alert(CRASHLOOP | {"deployment": "api; rm -rf /"})]
    outcome = engine.propose(incident_for(alerts), alerts)
    assert outcome.invalid_reason == (
        '規則 pod-crash：deployment 名稱 "api; rm -rf /" 不是有效的 Kubernetes 名稱'
    )
    alerts = [alert({"alertname": "KubePodCrashLooping", "namespace": "x"})]
    outcome = engine.propose(incident_for(alerts), alerts)
    assert outcome.proposal is not None and outcome.proposal.action is None
    assert outcome.proposal.summary == "KubePodCrashLooping：請人工調查"
    # the rule's own reasoning (team content) first, then why, in zh-TW
    assert outcome.proposal.reasoning.endswith(
        "沒有標籤指出目標（deployment、service、app）：請人工調查；沒有安全的自動動作。"
    )
    alerts = [alert({"alertname": "Nothing"})]
    outcome = RuleEngine([], locale="zh-TW").propose(incident_for(alerts), alerts)
    assert outcome.proposal is not None
    assert outcome.proposal.reasoning == "沒有符合的規則：請人工調查；沒有安全的自動動作。"


def test_conservative_proposal() -> None:
    inc = incident_for([alert({"alertname": "Nothing"})])
    en = conservative_proposal(inc, "rule_engine_failed")
    assert en.summary == "Nothing: investigate manually"
    assert en.reasoning == "The rule engine failed: investigate manually; no safe automatic action."
    zh = conservative_proposal(inc, "rule_engine_failed", "zh-TW")
    assert zh.reasoning.startswith("規則引擎發生錯誤")
    assert (zh.action, zh.risk, zh.source_name) == (None, Risk.LOW, "fallback")


def test_playbook_proposal_texts() -> None:
    action = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop")
    pb = playbook(runs=4, successes=3, description="")
    en = playbook_proposal(pb, 0.85, action)
    assert en.summary == "Playbook crash-restart"
    assert en.reasoning == (
        "Matches playbook “crash-restart” (similarity 0.85; 3/4 successful runs)."
    )
    zh = playbook_proposal(pb, 0.85, action, "zh-TW")
    assert zh.summary == "劇本 crash-restart"
    assert zh.reasoning == "符合劇本「crash-restart」（相似度 0.85；4 次執行中成功 3 次）。"
    # the description is the team's words: the summary and the reasoning's second line
    described = playbook_proposal(pb.model_copy(update={"description": "Restart it\nok"}), 1.0,
                                  action, "zh-TW")
    assert described.summary == "Restart it"
    assert described.reasoning.endswith("\nRestart it\nok")


def test_auto_approve_reasons_in_zh_tw() -> None:
    pb = playbook(runs=6, successes=6, recent="SSSSSS")
    assert auto_approve_eligible(pb, Risk.LOW, locale="zh-TW") == (
        True, "低風險、成功執行 6 次，最近 5 次沒有失敗"
    )
    assert auto_approve_eligible(pb, Risk.MEDIUM, locale="zh-TW")[1].startswith("風險為中")


async def test_engine_renders_in_its_locale(tmp_path) -> None:
    db = Database(tmp_path / "t.db")
    await db.open()
    try:
        repo = PlaybookRepo(db)
        await repo.add(
            playbook(
                symptoms=Symptoms(alertnames=["LabPodCrashLooping"]),
                action=ActionTemplate(verb=Verb.ROLLOUT_RESTART, namespace="kube-system"),
            )
        )
        cfg = ExecutorConfig(allowed_namespaces=frozenset({"shop"}))
        engine = DecisionEngine(
            RuleEngine(default_rules(), cfg.limits, "zh-TW"), None, repo, cfg, locale="zh-TW"
        )
        alerts = [alert(CRASHLOOP)]
        result = await engine.analyze(incident_for(alerts), alerts)
        assert result.proposal is None
        assert result.invalid_reason == (
            '劇本 crash-restart：命名空間 "kube-system" 不在允許的命名空間中（shop）'
        )
    finally:
        await db.close()


async def test_factory_passes_the_configured_locale(tmp_path) -> None:
    s = Settings(_env_file=None, locale="zh-TW")  # type: ignore[call-arg]
    db = Database(tmp_path / "t.db")
    await db.open()
    try:
        stack = factory.build_decision_stack(s, db)
        assert stack.engine.locale == "zh-TW"
        assert stack.engine.rules.locale == "zh-TW"
    finally:
        await db.close()
