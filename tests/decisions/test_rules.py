import pytest
from helpers import CRASHLOOP, DISK_FULL, ERROR_RATE, alert, incident_for

from bot.decisions.rules import (
    RuleEngine,
    RuleFileError,
    default_rules,
    load_rules,
    parse_rules,
)
from bot.execution.names import ActionLimits
from bot.models import Action, AlertStatus, ProposalSource, Risk, Verb


def propose(labels: dict[str, str], annotations: dict[str, str] | None = None, **engine_kw):
    alerts = [alert(labels, annotations)]
    return RuleEngine(default_rules(), **engine_kw).propose(incident_for(alerts), alerts)


def test_crashloop_fixture_restarts_the_deployment() -> None:
    outcome = propose(CRASHLOOP)
    assert outcome.invalid_reason is None
    assert outcome.proposal is not None
    assert outcome.proposal.action == Action(
        verb=Verb.ROLLOUT_RESTART, target_kind="deployment", target_name="cart", namespace="shop"
    )
    assert outcome.proposal.risk is Risk.MEDIUM
    assert outcome.proposal.source is ProposalSource.RULE
    assert outcome.proposal.source_name == "pod-crash"
    assert outcome.proposal.summary == "Restart cart in shop"


def test_error_rate_fixture_rolls_back_service_deployment() -> None:
    outcome = propose(ERROR_RATE)
    assert outcome.proposal is not None
    assert outcome.proposal.action == Action(
        verb=Verb.ROLLOUT_UNDO, target_name="checkout", namespace="payments"
    )
    assert outcome.proposal.risk is Risk.HIGH


def test_disk_full_fixture_has_no_action() -> None:
    outcome = propose(DISK_FULL)
    assert outcome.proposal is not None
    assert outcome.proposal.action is None
    assert outcome.rule_name == "disk-full"
    assert "no safe automatic action" in outcome.proposal.reasoning


def test_oom_killed_restarts() -> None:
    outcome = propose(
        {"alertname": "KubeContainerOOMKilled", "deployment": "api", "namespace": "x"}
    )
    assert outcome.proposal is not None and outcome.proposal.action is not None
    assert outcome.proposal.action.verb is Verb.ROLLOUT_RESTART


def test_unknown_alert_gets_conservative_default() -> None:
    outcome = propose({"alertname": "Watchdog", "namespace": "monitoring"})
    assert outcome.proposal is not None
    assert outcome.proposal.action is None
    assert outcome.rule_name == "default"


def test_latency_scales_up_from_current_count() -> None:
    outcome = propose(
        {"alertname": "HighRequestLatency", "deployment": "api", "namespace": "web"},
        {"replicas": "3"},
    )
    assert outcome.proposal is not None and outcome.proposal.action is not None
    assert outcome.proposal.action.verb is Verb.SCALE
    assert outcome.proposal.action.params == {"replicas": 5, "current_replicas": 3}
    assert outcome.proposal.risk is Risk.LOW


def test_scale_is_capped_by_rule_and_executor_bounds() -> None:
    labels = {"alertname": "KubeCPUSaturation", "deployment": "api", "namespace": "web"}
    outcome = propose(labels | {"replicas": "9"})
    assert outcome.proposal is not None and outcome.proposal.action is not None
    assert outcome.proposal.action.params["replicas"] == 10  # the rule's replicas_max
    outcome = propose(labels | {"replicas": "3"}, limits=ActionLimits(replicas_max=4))
    assert outcome.proposal is not None and outcome.proposal.action is not None
    assert outcome.proposal.action.params["replicas"] == 4


def test_scale_at_the_cap_proposes_nothing() -> None:
    outcome = propose(
        {"alertname": "HighLatency", "deployment": "api", "namespace": "w", "replicas": "10"}
    )
    assert outcome.proposal is not None and outcome.proposal.action is None
    assert "Already at 10 replicas" in outcome.proposal.reasoning


def test_scale_without_current_count_proposes_nothing() -> None:
    outcome = propose({"alertname": "HighLatency", "deployment": "api", "namespace": "w"})
    assert outcome.proposal is not None and outcome.proposal.action is None
    assert "replica count is unknown" in outcome.proposal.reasoning


def test_missing_target_label_proposes_nothing() -> None:
    outcome = propose({"alertname": "KubePodCrashLooping", "namespace": "x"})
    assert outcome.proposal is not None and outcome.proposal.action is None
    assert "No label names the target" in outcome.proposal.reasoning


@pytest.mark.parametrize("evil", ["api; rm -rf /", "$(reboot)", "../x", "a\nb", "<script>"])
def test_hostile_label_gives_invalid_reason(evil: str) -> None:
    outcome = propose(CRASHLOOP | {"deployment": evil})
    assert outcome.proposal is None
    assert outcome.invalid_reason is not None
    assert outcome.invalid_reason.startswith("rule pod-crash: deployment name")


def test_invalid_reason_text() -> None:
    outcome = propose(CRASHLOOP | {"deployment": "api; rm -rf /"})
    assert outcome.invalid_reason == (
        'rule pod-crash: deployment name "api; rm -rf /" is not a valid Kubernetes name'
    )


def test_namespace_allowlist_applies_to_rules() -> None:
    outcome = propose(CRASHLOOP, limits=ActionLimits(allowed_namespaces=frozenset({"payments"})))
    assert outcome.proposal is None
    assert "not in the allowed namespaces" in (outcome.invalid_reason or "")


def test_only_labels_all_firing_alerts_share_are_used() -> None:
    alerts = [
        alert({**CRASHLOOP, "deployment": "cart"}),
        alert({**CRASHLOOP, "deployment": "other"}),
        alert({**CRASHLOOP, "deployment": "ignored"}, status=AlertStatus.RESOLVED),
    ]
    outcome = RuleEngine(default_rules()).propose(incident_for(alerts), alerts)
    assert outcome.proposal is not None and outcome.proposal.action is not None
    # deployments disagree, so the next fallback label (service) names the target
    assert outcome.proposal.action.target_name == "cart-svc"


RULES = """
[[rule]]
name = "exact"
match = { alertname = "Exact", team = "db" }
risk = "high"
summary = "s"
reasoning = "r"
[rule.action]
verb = "rollout-restart"
target_kind = "statefulset"
target_from = ["statefulset"]

[[rule]]
name = "regex"
match_regex = { alertname = "Part" }
risk = "low"
summary = "regex"
reasoning = "r"
"""


def test_exact_match_needs_every_key() -> None:
    engine = RuleEngine(parse_rules(RULES))
    labels = {"alertname": "Exact", "team": "db", "statefulset": "pg", "namespace": "db"}
    alerts = [alert(labels)]
    outcome = engine.propose(incident_for(alerts), alerts)
    assert outcome.rule_name == "exact"
    assert outcome.proposal is not None and outcome.proposal.action is not None
    assert outcome.proposal.action.target_kind == "statefulset"
    alerts = [alert(labels | {"team": "web"})]
    assert engine.propose(incident_for(alerts), alerts).rule_name == ""


def test_regex_is_full_match() -> None:
    engine = RuleEngine(parse_rules(RULES))
    for name, expected in [("Part", "regex"), ("Partial", ""), ("APart", "")]:
        alerts = [alert({"alertname": name})]
        assert engine.propose(incident_for(alerts), alerts).rule_name == expected


def test_no_rule_matched_falls_back() -> None:
    alerts = [alert({"alertname": "Nothing"})]
    outcome = RuleEngine([]).propose(incident_for(alerts), alerts)
    assert outcome.proposal is not None and outcome.proposal.action is None
    assert outcome.proposal.source_name == "fallback"


def test_engine_never_raises(monkeypatch) -> None:
    engine = RuleEngine(default_rules())

    def boom(*_a, **_k):
        raise RuntimeError("bug")

    monkeypatch.setattr("bot.decisions.rules.incident_labels", boom)
    alerts = [alert(CRASHLOOP)]
    outcome = engine.propose(incident_for(alerts), alerts)
    assert outcome.proposal is not None and outcome.proposal.action is None


BASE = '[[rule]]\nname = "x"\nrisk = "low"\nsummary = "s"\nreasoning = "r"\n'


def test_bad_rule_files_fail_loudly(tmp_path) -> None:
    with pytest.raises(RuleFileError, match=r"rules\.toml"):
        load_rules(tmp_path / "rules.toml")
    assert [r.name for r in parse_rules(BASE)] == ["x"]  # the base alone is fine
    with pytest.raises(RuleFileError):
        parse_rules(BASE + 'match_regex = {a = "("}')
    with pytest.raises(RuleFileError):
        parse_rules(BASE.replace('"low"', '"huge"'))
    with pytest.raises(RuleFileError):
        parse_rules(BASE + "typo = 1")


def test_load_rules_from_file_and_default(tmp_path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    assert [r.name for r in load_rules(path)] == ["exact", "regex"]
    assert load_rules(None)[-1].name == "default"
