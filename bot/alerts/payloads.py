"""Webhook payloads (the edge): validate, then turn into an AlertGroup.

Alertmanager's v4 webhook is the reference shape; Grafana's v1 contact point
shares its base, and a small generic JSON shape covers everything else.
Unknown extra fields are accepted (senders add fields over time).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.models import Alert, AlertGroup, AlertStatus

# Alertmanager sends this for "not ended yet".
_ZERO_YEAR = 1


def _ends(value: datetime | None) -> datetime | None:
    if value is None or value.year <= _ZERO_YEAR:
        return None
    return value


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AMAlert(_Base):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels:
            raise ValueError("labels must not be empty")
        return labels

    def to_alert(self, source: str) -> Alert:
        return Alert(
            fingerprint=self.fingerprint or fingerprint_of(self.labels),
            status=AlertStatus(self.status),
            labels=self.labels,
            annotations=self.annotations,
            starts_at=_utc(self.startsAt),
            ends_at=_ends(_utc(self.endsAt)) if self.endsAt else None,
            generator_url=self.generatorURL,
            source=source,
        )


class AlertmanagerPayload(_Base):
    version: str = "4"
    groupKey: str = Field(min_length=1, max_length=4096)
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AMAlert] = Field(min_length=1, max_length=10000)

    def to_group(self, source: str = "alertmanager") -> AlertGroup:
        return AlertGroup(
            source=source,
            group_key=self.groupKey,
            group_labels=self.groupLabels,
            common_labels=self.commonLabels,
            common_annotations=self.commonAnnotations,
            external_url=self.externalURL,
            truncated_alerts=self.truncatedAlerts,
            alerts=[a.to_alert(source) for a in self.alerts],
        )


class GrafanaAlert(AMAlert):
    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""


class GrafanaPayload(AlertmanagerPayload):
    """Grafana's webhook contact point (version "1"): Alertmanager's base plus extras."""

    version: str = "1"
    alerts: list[GrafanaAlert] = Field(min_length=1, max_length=10000)  # type: ignore[assignment]
    title: str = ""
    state: str = ""
    message: str = ""

    def to_group(self, source: str = "grafana") -> AlertGroup:
        return super().to_group(source)


class GenericPayload(_Base):
    """For anything that can POST JSON: one alert per request."""

    title: str = Field(min_length=1, max_length=500)
    message: str = Field(default="", max_length=20000)
    severity: str = Field(default="warning", max_length=50)
    status: Literal["firing", "resolved"] = "firing"
    id: str = Field(default="", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict)
    url: str = ""
    starts_at: datetime | None = None

    def to_group(self, received_at: datetime) -> AlertGroup:
        labels = {"alertname": self.title, "severity": self.severity, **self.labels}
        key = self.id or fingerprint_of(labels)
        alert = Alert(
            fingerprint=fingerprint_of({"id": key}),
            status=AlertStatus(self.status),
            labels=labels,
            annotations={"summary": self.title, "description": self.message},
            # Without a start time, one id is one episode; the id anchors it.
            starts_at=_utc(self.starts_at) if self.starts_at else datetime(1970, 1, 1, tzinfo=UTC),
            ends_at=received_at if self.status == "resolved" else None,
            generator_url=self.url,
            source="generic",
        )
        return AlertGroup(
            source="generic",
            group_key=f"generic:{key}",
            group_labels={"alertname": self.title},
            common_labels=labels,
            alerts=[alert],
        )


def fingerprint_of(labels: dict[str, str]) -> str:
    canonical = json.dumps(labels, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class PayloadError(Exception):
    """A payload we refuse, with the fields that are wrong (for a 400 body)."""

    def __init__(self, message: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "fields": self.fields}


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def parse(kind: str, raw: bytes, received_at: datetime) -> AlertGroup:
    """Bytes of a webhook body -> AlertGroup, or PayloadError naming what is wrong."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PayloadError("body must be a JSON object")
    try:
        if kind == "alertmanager":
            return AlertmanagerPayload.model_validate(data).to_group()
        if kind == "grafana":
            return GrafanaPayload.model_validate(data).to_group()
        return GenericPayload.model_validate(data).to_group(received_at)
    except ValidationError as exc:
        fields = [
            {"field": _field_path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()
        ]
        first = fields[0]
        raise PayloadError(
            f"invalid {kind} payload: {first['field']}: {first['message']}", fields
        ) from exc
