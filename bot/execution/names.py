"""Validating an action before it runs, against the Kubernetes name rules and the
action allowlist (bot/allowlist.py).

Every value that ends up in a kubectl argv or an HTTP action request passes
`validate_action` first. Label values come from whoever can post alerts, so
they are treated as hostile: only the exact Kubernetes name grammar passes
(ASCII lower-case letters, digits, '-' and '.'), which rules out shell
metacharacters, path traversal, option-looking values and unicode lookalikes.

Refusals are InvalidAction(code, **values); `invalid_text` renders them from
templates/<locale>/decisions/invalid.html (the only part that reads files).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bot import texts
from bot.allowlist import (
    ALLOWED_PARAMS,
    ALLOWED_TARGET_KINDS,
    is_dns1123_label,
    is_dns1123_subdomain,
)
from bot.models import Action, ActionKind, Verb

# Every InvalidAction code; each has a macro in templates/<locale>/decisions/invalid.html.
CODES = (
    "kind_not_supported",
    "verb_not_allowed",
    "target_kind_not_allowed",
    "namespace_invalid",
    "namespace_not_allowed",
    "name_invalid",
    "param_unknown",
    "param_not_whole",
    "replicas_missing",
    "replicas_out_of_range",
    "current_replicas_negative",
    "revision_too_low",
)
INVALID_TEMPLATE = "decisions/invalid.html"


@dataclass(frozen=True)
class Shown:
    """A value quoted for an InvalidAction (see `shown`); the templates add the length
    ("(300 characters)") when it was cut, in their own words."""

    text: str  # JSON-quoted: newlines escaped; cut with "…" when too long
    length: int | None = None  # the value's length, set only when it was cut

    def __str__(self) -> str:
        return self.text


Param = str | int | tuple[str, ...] | Shown


class InvalidAction(texts.TemplatedError):
    """An action that must not run: what is wrong as a code and its values.

    The words live in the templates: `invalid_text(exc, locale)` is what the chat sees.
    """

    template = INVALID_TEMPLATE

    @property
    def reason(self) -> str:
        """The English text (the executor's error field reads this)."""
        return self.message


def invalid_text(exc: InvalidAction, locale: str = texts.DEFAULT_LOCALE) -> str:
    """Why the action was refused, as plain text in `locale`; the card escapes it again."""
    return exc.text(locale)


@dataclass(frozen=True)
class ActionLimits:
    """Deployment-specific limits on top of the name rules (from config)."""

    allowed_namespaces: frozenset[str] | None = None  # None: any namespace
    replicas_min: int = 1
    replicas_max: int = 20

    @property
    def replicas_bounds(self) -> tuple[int, int]:
        return (self.replicas_min, self.replicas_max)

    def check(self, action: Action) -> None:
        validate_action(action, self.allowed_namespaces, self.replicas_bounds)


def shown(value: object, limit: int = 60) -> Shown:
    """A value quoted for an InvalidAction: escapes newlines, cuts long values."""
    text = json.dumps(str(value), ensure_ascii=False)
    if len(text) > limit:
        return Shown(f'{text[: limit - 1]}…"', len(str(value)))
    return Shown(text)


def validate_action(
    action: Action,
    allowed_namespaces: frozenset[str] | None,
    replicas_bounds: tuple[int, int],
) -> None:
    """Raise InvalidAction with a human reason unless `action` is safe to turn into an argv."""
    if not isinstance(action.kind, ActionKind):
        raise InvalidAction("kind_not_supported", kind=shown(action.kind))
    if not isinstance(action.verb, Verb):
        raise InvalidAction("verb_not_allowed", verb=shown(action.verb))
    kinds = ALLOWED_TARGET_KINDS[action.verb]
    if action.target_kind not in kinds:
        raise InvalidAction(
            "target_kind_not_allowed",
            verb=str(action.verb),
            kind=shown(action.target_kind),
            allowed=tuple(sorted(kinds)),
        )
    if not isinstance(action.namespace, str) or not is_dns1123_label(action.namespace):
        raise InvalidAction("namespace_invalid", namespace=shown(action.namespace))
    if allowed_namespaces is not None and action.namespace not in allowed_namespaces:
        raise InvalidAction(
            "namespace_not_allowed",
            namespace=shown(action.namespace),
            allowed=tuple(sorted(allowed_namespaces)),
        )
    if not isinstance(action.target_name, str) or not is_dns1123_subdomain(action.target_name):
        raise InvalidAction(
            "name_invalid", kind=action.target_kind, name=shown(action.target_name)
        )
    _validate_params(action, replicas_bounds)


def _validate_params(action: Action, replicas_bounds: tuple[int, int]) -> None:
    allowed = ALLOWED_PARAMS[action.verb]
    for key in action.params:
        if key not in allowed:
            raise InvalidAction("param_unknown", verb=str(action.verb), param=shown(key))
    for key, value in action.params.items():
        # bool is an int subclass; "3" is not a replica count.
        if type(value) is not int:
            raise InvalidAction("param_not_whole", param=key, value=shown(value))
    if action.verb is Verb.SCALE:
        low, high = replicas_bounds
        replicas = action.params.get("replicas")
        if replicas is None:
            raise InvalidAction("replicas_missing")
        if not low <= int(replicas) <= high:
            raise InvalidAction(
                "replicas_out_of_range", replicas=int(replicas), low=low, high=high
            )
        current = action.params.get("current_replicas")
        if current is not None and int(current) < 0:
            raise InvalidAction("current_replicas_negative", current=int(current))
    revision = action.params.get("to_revision")
    if revision is not None and int(revision) < 1:
        raise InvalidAction("revision_too_low", revision=int(revision))
