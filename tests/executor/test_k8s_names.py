import re
from pathlib import Path

import pytest
from jinja2.runtime import Macro

from bot import texts
from bot.allowlist import is_dns1123_label, is_dns1123_subdomain
from bot.execution import names as k8s_names
from bot.execution.names import (
    CODES,
    ActionLimits,
    InvalidAction,
    Shown,
    invalid_text,
    validate_action,
)
from bot.models import Action, ActionKind, Verb

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
    assert err.value.code == "name_invalid"
    assert "is not a valid Kubernetes name" in invalid_text(err.value, "en")


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_corpus_rejected_as_namespace(value: str) -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(namespace=value), None, NO_LIMIT)
    assert err.value.code == "namespace_invalid"
    assert "namespace" in invalid_text(err.value, "en")


def test_reason_is_readable() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="api; rm -rf /"), None, NO_LIMIT)
    text = 'deployment name "api; rm -rf /" is not a valid Kubernetes name'
    assert err.value.code == "name_invalid"
    assert err.value.params == {"kind": "deployment", "name": Shown('"api; rm -rf /"')}
    assert invalid_text(err.value, "en") == text
    # str()/.message/.reason stay English (logs, the executor's error), from the same template
    assert str(err.value) == err.value.message == err.value.reason == text


def test_reason_escapes_newline_and_cuts_long_values() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="api\nrm"), None, NO_LIMIT)
    for locale in ("en", "zh-TW"):
        assert "\n" not in invalid_text(err.value, locale)
        assert "api\\nrm" in invalid_text(err.value, locale)
    with pytest.raises(InvalidAction) as err:
        validate_action(action(target_name="a" * 300), None, NO_LIMIT)
    assert err.value.params["name"] == Shown('"' + "a" * 58 + '…"', 300)
    assert "300 characters" in invalid_text(err.value, "en")
    assert "共 300 個字元" in invalid_text(err.value, "zh-TW")
    for locale in ("en", "zh-TW"):
        assert len(invalid_text(err.value, locale)) < 150


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
    with pytest.raises(InvalidAction, match="cannot target") as err:
        validate_action(action(verb=verb, target_kind=kind, params=params), None, NO_LIMIT)
    assert err.value.code == "target_kind_not_allowed"


def test_allowed_namespaces() -> None:
    allowed = frozenset({"shop", "payments"})
    validate_action(action(namespace="shop"), allowed, NO_LIMIT)
    with pytest.raises(InvalidAction) as err:
        validate_action(action(namespace="kube-system"), allowed, NO_LIMIT)
    assert err.value.code == "namespace_not_allowed"
    assert invalid_text(err.value, "en") == (
        'namespace "kube-system" is not in the allowed namespaces (payments, shop)'
    )
    with pytest.raises(InvalidAction) as err:
        validate_action(action(namespace="kube-system"), frozenset(), NO_LIMIT)
    assert invalid_text(err.value, "en").endswith("allowed namespaces (none)")
    assert invalid_text(err.value, "zh-TW").endswith("（無）")


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({}, "replicas_missing", "absolute replica count"),
        ({"replicas": 0}, "replicas_out_of_range", "outside the allowed range 1..20"),
        ({"replicas": 21}, "replicas_out_of_range", "outside the allowed range"),
        ({"replicas": "3"}, "param_not_whole", "whole number"),
        ({"replicas": 3, "current_replicas": -1}, "current_replicas_negative", "be negative"),
        ({"replicas": 3, "force": 1}, "param_unknown", "does not take the parameter"),
    ],
)
def test_scale_params(params: dict, code: str, message: str) -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(verb=Verb.SCALE, params=params), None, NO_LIMIT)
    assert err.value.code == code
    assert message in invalid_text(err.value, "en")


def test_scale_bounds_are_inclusive() -> None:
    for replicas in (2, 5):
        validate_action(action(verb=Verb.SCALE, params={"replicas": replicas}), None, (2, 5))


def test_limits_check_uses_configured_bounds() -> None:
    limits = ActionLimits(frozenset({"prod"}), replicas_min=2, replicas_max=4)
    limits.check(action(verb=Verb.SCALE, params={"replicas": 4}))
    with pytest.raises(InvalidAction):
        limits.check(action(verb=Verb.SCALE, params={"replicas": 5}))


def test_restart_takes_no_params() -> None:
    with pytest.raises(InvalidAction) as err:
        validate_action(action(params={"selector": "x"}), None, NO_LIMIT)
    assert err.value.code == "param_unknown"
    assert invalid_text(err.value, "en") == 'rollout-restart does not take the parameter "selector"'


# ------------------------------------------------------------------ refusal texts (templates)

_CJK = re.compile(r"[\u4e00-\u9fff]")
SHOP = frozenset({"prod", "shop"})

# One real refused action per InvalidAction code: the texts are checked as validate_action
# fills them in. model_construct: kind and verb outside their enums cannot be built otherwise.
_EXAMPLES: list[tuple[Action, str]] = [
    (Action.model_construct(**(action().model_dump() | {"kind": "ssh"})), "kind_not_supported"),
    (Action.model_construct(**(action().model_dump() | {"verb": "reboot"})), "verb_not_allowed"),
    (action(target_kind="daemonset"), "target_kind_not_allowed"),
    (action(namespace="Prod"), "namespace_invalid"),
    (action(namespace="kube-system"), "namespace_not_allowed"),
    (action(target_name="api; rm -rf /"), "name_invalid"),
    (action(params={"x" * 80: 1}), "param_unknown"),  # a cut value: its length is shown
    (action(verb=Verb.SCALE, params={"replicas": "3"}), "param_not_whole"),
    (action(verb=Verb.SCALE), "replicas_missing"),
    (action(verb=Verb.SCALE, params={"replicas": 50}), "replicas_out_of_range"),
    (action(verb=Verb.SCALE, params={"replicas": 3, "current_replicas": -2}),
     "current_replicas_negative"),
    (action(verb=Verb.ROLLOUT_UNDO, params={"to_revision": 0}), "revision_too_low"),
]


def _refused(act: Action) -> InvalidAction:
    with pytest.raises(InvalidAction) as err:
        validate_action(act, SHOP, NO_LIMIT)
    return err.value


def _macros(locale: str) -> dict[str, Macro]:
    module = texts.ENV.get_template(f"{locale}/decisions/invalid.html").module
    # q() is the file's own helper (how a quoted value is written), not a refusal
    return {k: v for k, v in vars(module).items() if isinstance(v, Macro) and k != "q"}


def test_codes_list_every_code_the_module_raises() -> None:
    source = Path(k8s_names.__file__).read_text(encoding="utf-8")
    raised = set(re.findall(r'InvalidAction\(\s*"(\w+)"', source))
    assert raised == set(CODES)
    assert len(CODES) == len(set(CODES))
    assert {code for _, code in _EXAMPLES} == set(CODES)


def test_example_kinds_are_really_outside_the_enums() -> None:
    assert not isinstance(_EXAMPLES[0][0].kind, ActionKind)
    assert not isinstance(_EXAMPLES[1][0].verb, Verb)


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_every_code_has_a_macro_in_each_locale(locale: str) -> None:
    # Looked up in the locale's own file: no silent fallback to English.
    assert set(_macros(locale)) == set(CODES) | {"from_source"}
    assert set(_macros(locale)["from_source"].arguments) == {"source", "name", "reason"}


def _values(value: object) -> list[str]:
    if isinstance(value, tuple):
        return [str(v) for v in value]
    if isinstance(value, Shown):
        return [value.text] + ([str(value.length)] if value.length is not None else [])
    return [str(value)]


@pytest.mark.parametrize(("act", "code"), _EXAMPLES, ids=[c for _, c in _EXAMPLES])
def test_invalid_text_per_locale(act: Action, code: str) -> None:
    exc = _refused(act)
    assert exc.code == code
    for locale in ("en", "zh-TW"):
        # The macro declares exactly the values the raise site passes: none is dropped.
        assert set(_macros(locale)[code].arguments) == set(exc.params), locale
    en, zh = invalid_text(exc, "en"), invalid_text(exc, "zh-TW")
    assert en and not _CJK.search(en)
    assert _CJK.search(zh), zh
    assert str(exc) == en
    assert invalid_text(exc, "zh_tw") == zh  # locale spelled like the settings may spell it
    assert invalid_text(exc, "fr") == en  # unknown locale: English
    for value in exc.params.values():
        for item in _values(value):
            assert item in en
            assert item in zh
    assert "\n" not in en + zh
    assert "  " not in en + zh


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_invalid_text_gives_hostile_values_back_as_plain_text(locale: str) -> None:
    exc = _refused(action(target_name="<script>&"))
    assert exc.params == {"kind": "deployment", "name": Shown('"<script>&"')}
    assert '"<script>&"' in invalid_text(exc, locale)
    assert "&amp;" not in invalid_text(exc, locale)
    if locale == "en":
        assert invalid_text(exc, locale) == (
            'deployment name "<script>&" is not a valid Kubernetes name'
        )
    # Text that merely looks like an entity is the sender's text too, and stays as written.
    entity = _refused(action(namespace="&lt;b&gt;"))
    assert '"&lt;b&gt;"' in invalid_text(entity, locale)
