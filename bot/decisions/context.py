"""What the proposers see of an incident: the labels its firing alerts agree on.

A label only counts when every firing alert carries the same value, so an
action never targets one alert's deployment on behalf of a whole group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bot.labels import common_labels, firing_or_all, shared
from bot.models import Alert, Incident


def incident_labels(incident: Incident, alerts: Sequence[Alert]) -> dict[str, str]:
    """Incident fields, overlaid by its group labels, overlaid by the alerts' common labels."""
    labels = {"alertname": incident.alertname, "severity": incident.severity}
    if incident.namespace:
        labels["namespace"] = incident.namespace
    labels.update(incident.group_labels)
    labels.update(common_labels(firing_or_all(alerts)))
    return labels


def incident_annotations(alerts: Sequence[Alert]) -> dict[str, str]:
    return shared([a.annotations for a in firing_or_all(alerts)])


def first_present(values: Mapping[str, str], names: Iterable[str]) -> str | None:
    """The value of the first name that is set and non-empty."""
    for name in names:
        if values.get(name):
            return values[name]
    return None
