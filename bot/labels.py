"""What a set of alerts agrees on: the one "common labels" helper of the alert path
(ingest, the card's Details, what the proposers see)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.models import Alert, AlertStatus


def shared(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Entries every mapping holds with the same value, sorted by key; {} for no mappings."""
    if not maps:
        return {}
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in rest)}


def firing_or_all(alerts: Sequence[Alert]) -> list[Alert]:
    """The firing alerts; all of them when none fires (a group that resolved as a whole)."""
    return [a for a in alerts if a.status is AlertStatus.FIRING] or list(alerts)


def common_labels(alerts: Sequence[Alert]) -> dict[str, str]:
    """Labels every alert carries with the same value."""
    return shared([a.labels for a in alerts])
