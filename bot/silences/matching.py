"""Silence matching, with Alertmanager's semantics (regexes are anchored)."""

from __future__ import annotations

import re
from functools import lru_cache

from bot.models import Matcher, Silence


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def matcher_matches(matcher: Matcher, labels: dict[str, str]) -> bool:
    value = labels.get(matcher.name, "")
    if matcher.is_regex:
        try:
            return _compiled(matcher.value).fullmatch(value) is not None
        except re.error:
            return False
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
