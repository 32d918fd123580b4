"""What the proposers see of an incident: the labels its firing alerts agree on.

A label only counts when every firing alert carries the same value, so an
action never targets one alert's deployment on behalf of a whole group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bot.models import Alert, AlertStatus, Incident


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


def _firing(alerts: Sequence[Alert]) -> list[Alert]:
    return [a for a in alerts if a.status is AlertStatus.FIRING] or list(alerts)


def incident_labels(incident: Incident, alerts: Sequence[Alert]) -> dict[str, str]:
    """Incident fields, overlaid by its group labels, overlaid by the alerts' common labels."""
    labels = {"alertname": incident.alertname, "severity": incident.severity}
    if incident.namespace:
        labels["namespace"] = incident.namespace
    labels.update(incident.group_labels)
    labels.update(_common([a.labels for a in _firing(alerts)]))
    return labels


def incident_annotations(alerts: Sequence[Alert]) -> dict[str, str]:
    return _common([a.annotations for a in _firing(alerts)])


def first_present(values: Mapping[str, str], names: Iterable[str]) -> str | None:
    """The value of the first name that is set and non-empty."""
    for name in names:
        if values.get(name):
            return values[name]
    return None
