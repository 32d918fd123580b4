"""Kubernetes name rules and the action allowlist.

Every value that ends up in a kubectl argv or an HTTP action request passes
`validate_action` first. Label values come from whoever can post alerts, so
they are treated as hostile: only the exact Kubernetes name grammar passes
(ASCII lower-case letters, digits, '-' and '.'), which rules out shell
metacharacters, path traversal, option-looking values and unicode lookalikes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from bot.models import Action, ActionKind, Verb

# fullmatch + explicit ASCII classes: '$' would accept a trailing newline and
# \w would accept unicode letters.
_LABEL_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253

# Which target kinds each verb may touch.
ALLOWED_TARGET_KINDS: dict[Verb, frozenset[str]] = {
    Verb.ROLLOUT_RESTART: frozenset({"deployment", "statefulset"}),
    Verb.ROLLOUT_UNDO: frozenset({"deployment", "statefulset"}),
    Verb.SCALE: frozenset({"deployment", "statefulset"}),
    Verb.DELETE_POD: frozenset({"pod"}),
}

# Which params each verb accepts; anything else is refused rather than ignored.
ALLOWED_PARAMS: dict[Verb, frozenset[str]] = {
    Verb.ROLLOUT_RESTART: frozenset(),
    Verb.ROLLOUT_UNDO: frozenset({"to_revision"}),
    Verb.SCALE: frozenset({"replicas", "current_replicas"}),
    Verb.DELETE_POD: frozenset(),
}


class InvalidAction(ValueError):
    """An action that must not run. `reason` is written for the people in the chat."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


def is_dns1123_label(value: str) -> bool:
    return len(value) <= LABEL_MAX and _LABEL_RE.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= SUBDOMAIN_MAX and _SUBDOMAIN_RE.fullmatch(value) is not None


def shown(value: object, limit: int = 60) -> str:
    """A value quoted for a reason text: escapes newlines, cuts long values."""
    text = json.dumps(str(value), ensure_ascii=False)
    if len(text) > limit:
        text = f'{text[: limit - 1]}…" ({len(str(value))} characters)'
    return text


def validate_action(
    action: Action,
    allowed_namespaces: frozenset[str] | None,
    replicas_bounds: tuple[int, int],
) -> None:
    """Raise InvalidAction with a human reason unless `action` is safe to turn into an argv."""
    if not isinstance(action.kind, ActionKind):
        raise InvalidAction(f"action kind {shown(action.kind)} is not supported")
    if not isinstance(action.verb, Verb):
        raise InvalidAction(f"verb {shown(action.verb)} is not in the allowlist")
    kinds = ALLOWED_TARGET_KINDS[action.verb]
    if action.target_kind not in kinds:
        raise InvalidAction(
            f"{action.verb} cannot target {shown(action.target_kind)}"
            f" (allowed: {', '.join(sorted(kinds))})"
        )
    if not isinstance(action.namespace, str) or not is_dns1123_label(action.namespace):
        raise InvalidAction(f"namespace {shown(action.namespace)} is not a valid Kubernetes name")
    if allowed_namespaces is not None and action.namespace not in allowed_namespaces:
        raise InvalidAction(
            f"namespace {shown(action.namespace)} is not in the allowed namespaces"
            f" ({', '.join(sorted(allowed_namespaces)) or 'none'})"
        )
    if not isinstance(action.target_name, str) or not is_dns1123_subdomain(action.target_name):
        raise InvalidAction(
            f"{action.target_kind} name {shown(action.target_name)} is not a valid Kubernetes name"
        )
    _validate_params(action, replicas_bounds)


def _validate_params(action: Action, replicas_bounds: tuple[int, int]) -> None:
    allowed = ALLOWED_PARAMS[action.verb]
    for key in action.params:
        if key not in allowed:
            raise InvalidAction(f"{action.verb} does not take the parameter {shown(key)}")
    for key, value in action.params.items():
        # bool is an int subclass; "3" is not a replica count.
        if type(value) is not int:
            raise InvalidAction(f"parameter {key} must be a whole number, got {shown(value)}")
    if action.verb is Verb.SCALE:
        low, high = replicas_bounds
        replicas = action.params.get("replicas")
        if replicas is None:
            raise InvalidAction("scale needs an absolute replica count (replicas)")
        if not low <= int(replicas) <= high:
            raise InvalidAction(f"replicas={replicas} is outside the allowed range {low}..{high}")
        current = action.params.get("current_replicas")
        if current is not None and int(current) < 0:
            raise InvalidAction(f"current_replicas={current} cannot be negative")
    revision = action.params.get("to_revision")
    if revision is not None and int(revision) < 1:
        raise InvalidAction(f"to_revision={revision} must be 1 or more")
