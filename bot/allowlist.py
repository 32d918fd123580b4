"""What an action may name: the Kubernetes name grammar, and which target kinds and
params each verb may take. Plain data and predicates, below storage: a saved playbook
(bot/playbook_types.py) is held to them when it is loaded, the investigation tools when
they build an argv, and every action again by bot/execution/names.py before it runs.
"""

from __future__ import annotations

import re

from bot.models import Verb

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


def is_dns1123_label(value: str) -> bool:
    return len(value) <= LABEL_MAX and _LABEL_RE.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= SUBDOMAIN_MAX and _SUBDOMAIN_RE.fullmatch(value) is not None
