import pytest

from bot.k8s_names import (
    ActionLimits,
    InvalidAction,
    is_dns1123_label,
    is_dns1123_subdomain,
    validate_action,
)
from bot.models import Action, Verb

INJECTIONS = [
    "api; rm -rf /",
    "$(reboot)",
    "`reboot`",
    "../x",
    "api\n--all",
    "api\n",
    "a" * 300,
    "<script>alert(1)</script>",
    "аpi",  # Cyrillic 'а'
    "api\u200b",  # zero-width space
    "ａpi",  # fullwidth 'a'
    "API",
    "-n",
    "--all",
    "api/..",
    "a b",
    "",
    "api-",
    "api.",
    ".api",
]


def action(**overrides) -> Action:
    fields = {"verb": Verb.ROLLOUT_RESTART, "target_name": "api", "namespace": "prod"}
    return Action(**(fields | overrides))


NO_LIMIT = (1, 20)


@pytest.mark.parametrize("value", ["api", "a", "cart-v2", "0abc", "a" * 63])
def test_valid_labels(value: str) -> None:
    assert is_dns1123_label(value)


@pytest.mark.parametrize("value", ["checkout.v2", "a" * 253, "a-b.c-d"])
def test_valid_subdomains(value: str) -> None:
    assert is_dns1123_subdomain(value)


def test_label_length_limit() -> None:
    assert not is_dns1123_label("a" * 64)
    assert not is_dns1123_label("a.b")
    assert not is_dns1123_subdomain("a" * 254)


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_corpus_rejected_as_target_name(value: str) -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name=value), None, NO_LIMIT)
    assert "is not a valid Kubernetes name" in err.value.reason


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_corpus_rejected_as_namespace(value: str) -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(namespace=value), None, NO_LIMIT)
    assert "namespace" in err.value.reason


def test_reason_is_readable() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="api; rm -rf /"), None, NO_LIMIT)
    assert err.value.reason == 'deployment name "api; rm -rf /" is not a valid Kubernetes name'


def test_reason_escapes_newline_and_cuts_long_values() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="api\nrm"), None, NO_LIMIT)
    assert "\n" not in err.value.reason
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="a" * 300), None, NO_LIMIT)
    assert "300 characters" in err.value.reason
    assert len(err.value.reason) < 150


def test_valid_action_passes() -> None:
    validate_action(action(), None, NO_LIMIT)
    validate_action(action(target_kind="statefulset", target_name="db.v2"), None, NO_LIMIT)
    validate_action(
        action(verb=Verb.DELETE_POD, target_kind="pod", target_name="api-5d8f-x2"), None, NO_LIMIT
    )


@pytest.mark.parametrize(
    ("verb", "kind"),
    [
        (Verb.ROLLOUT_RESTART, "pod"),
        (Verb.ROLLOUT_RESTART, "daemonset"),
        (Verb.SCALE, "node"),
        (Verb.DELETE_POD, "deployment"),
        (Verb.ROLLOUT_UNDO, "namespace"),
    ],
)
def test_target_kind_allowlist(verb: Verb, kind: str) -> None:
    params = {"replicas": 2} if verb is Verb.SCALE else {}
    with pytest.raises(InvalidAction, match="cannot target"):
        validate_action(action(verb=verb, target_kind=kind, params=params), None, NO_LIMIT)


def test_allowed_namespaces() -> None:
    allowed = frozenset({"shop", "payments"})
    validate_action(action(namespace="shop"), allowed, NO_LIMIT)
    with pytest.raises(InvalidAction, match="not in the allowed namespaces"):
        validate_action(action(namespace="kube-system"), allowed, NO_LIMIT)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "absolute replica count"),
        ({"replicas": 0}, "outside the allowed range 1..20"),
        ({"replicas": 21}, "outside the allowed range"),
        ({"replicas": "3"}, "whole number"),
        ({"replicas": 3, "current_replicas": -1}, "cannot be negative"),
        ({"replicas": 3, "force": 1}, "does not take the parameter"),
    ],
)
def test_scale_params(params: dict, message: str) -> None:
    with pytest.raises(InvalidAction, match=message):
        validate_action(action(verb=Verb.SCALE, params=params), None, NO_LIMIT)


def test_scale_bounds_are_inclusive() -> None:
    for replicas in (2, 5):
        validate_action(action(verb=Verb.SCALE, params={"replicas": replicas}), None, (2, 5))


def test_limits_check_uses_configured_bounds() -> None:
    limits = ActionLimits(frozenset({"prod"}), replicas_min=2, replicas_max=4)
    limits.check(action(verb=Verb.SCALE, params={"replicas": 4}))
    with pytest.raises(InvalidAction):
        limits.check(action(verb=Verb.SCALE, params={"replicas": 5}))


def test_restart_takes_no_params() -> None:
    with pytest.raises(InvalidAction, match="does not take"):
        validate_action(action(params={"selector": "x"}), None, NO_LIMIT)
