"""Silence matching, with Alertmanager's semantics (regexes are anchored).

Regexes run on RE2, as in Alertmanager: its time is linear in the label value, whatever the
pattern. Python's backtracking `re` would hold the event loop for minutes on a pattern such
as `(a|a)*b` against a label of 30 a's, and every notification matches every silence.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

from bot.models import Matcher, Silence

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is answered in the chat, not logged by RE2


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any | None:
    """The RE2 program of a silence regex; None when RE2 refuses the pattern."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error:
        return None


def matcher_matches(matcher: Matcher, labels: dict[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.is_regex:
        program = compiled(matcher.value)
        return program is not None and program.fullmatch(value) is not None
    return value == matcher.value


def silence_matches(silence: Silence, labels: dict[str, str]) -> bool:
    return bool(silence.matchers) and all(matcher_matches(m, labels) for m in silence.matchers)


def covering_silence(silences: list[Silence], label_sets: list[dict[str, str]]) -> Silence | None:
    """The silence that matches every given label set (all firing alerts of an incident)."""
    if not label_sets:
        return None
    for silence in silences:
        if all(silence_matches(silence, labels) for labels in label_sets):
            return silence
    return None


def group_matchers(group_labels: dict[str, str]) -> list[Matcher]:
    return [Matcher(name=k, value=v) for k, v in sorted(group_labels.items())]
