import pytest

from bot.incidents.risk import (
    DEFAULT_MIN_RISK,
    effective_risk,
    gate_risk,
    min_risks,
    required_approvals,
)
from bot.models import Action, Proposal, Risk, Verb


def act(verb: Verb) -> Action:
    return Action(verb=verb, target_name="api", namespace="prod")


def test_defaults() -> None:
    assert DEFAULT_MIN_RISK == {
        Verb.SCALE: Risk.LOW,
        Verb.ROLLOUT_RESTART: Risk.MEDIUM,
        Verb.DELETE_POD: Risk.MEDIUM,
        Verb.ROLLOUT_UNDO: Risk.HIGH,
    }


def test_proposer_cannot_lower() -> None:
    assert effective_risk(act(Verb.ROLLOUT_UNDO), Risk.LOW) is Risk.HIGH


def test_proposer_may_raise() -> None:
    assert effective_risk(act(Verb.SCALE), Risk.CRITICAL) is Risk.CRITICAL


def test_no_action_keeps_proposed() -> None:
    assert effective_risk(None, Risk.LOW) is Risk.LOW


def test_overrides_from_config() -> None:
    minimums = min_risks({"scale": "high"})
    assert effective_risk(act(Verb.SCALE), Risk.LOW, minimums) is Risk.HIGH
    assert minimums[Verb.ROLLOUT_RESTART] is Risk.MEDIUM


def test_bad_override_fails_loudly() -> None:
    with pytest.raises(ValueError):
        min_risks({"reboot": "low"})
    with pytest.raises(ValueError):
        min_risks({"scale": "tiny"})


def test_required_approvals() -> None:
    assert [required_approvals(r) for r in Risk] == [1, 1, 1, 2]
    assert required_approvals(Risk.CRITICAL, critical_approvals=3) == 3
    assert required_approvals(Risk.HIGH, critical_approvals=3) == 1


def test_critical_namespace_raises_any_verb_to_critical() -> None:
    for verb in Verb:
        assert effective_risk(act(verb), Risk.LOW, critical_namespaces={"prod"}) is Risk.CRITICAL
        assert effective_risk(act(verb), Risk.LOW, critical_namespaces={"payments"}) \
            is DEFAULT_MIN_RISK[verb]


def test_gate_risk_sets_the_flag_the_card_explains() -> None:
    proposal = Proposal(action=act(Verb.SCALE), risk=Risk.LOW, summary="s", reasoning="r")
    gated = gate_risk(proposal, critical_namespaces={"prod"})
    assert gated.risk is Risk.CRITICAL and gated.critical_namespace
    assert required_approvals(gated.risk) == 2
    assert not gate_risk(proposal, critical_namespaces={"payments"}).critical_namespace
    nothing = Proposal(action=None, risk=Risk.LOW, summary="s", reasoning="r")
    assert gate_risk(nothing, critical_namespaces={"prod"}) == nothing
