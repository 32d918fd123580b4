"""Webhook payloads (the edge): validate, then turn into an AlertGroup.

Alertmanager's v4 webhook is the reference shape; Grafana's v1 contact point
shares its base, and a small generic JSON shape covers everything else.
Unknown extra fields are accepted (senders add fields over time).

Everything a client sends is checked before anything is stored, so a body is
either stored whole or refused with the field that is wrong: strict UTF-8 (no
surrogates, escaped or raw), at most MAX_DEPTH levels of nesting, integers in
SQLite's 64-bit range, no NaN/Infinity, and times within TIME_WINDOW. Go's zero
time (year 1, any offset) as endsAt means "not ended"; any other time outside
the window is refused rather than clamped: no real clock produces one, and a
guessed time would show on the card as if it were true.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from bot.models import (
    GRAFANA_LINK_ANNOTATIONS,
    VALUES_ANNOTATION,
    Alert,
    AlertGroup,
    AlertStatus,
)

# Alertmanager sends Go's zero time (year 1, in any zone) for "not ended yet".
_ZERO_YEAR = 1
# Times a real sender produces; outside it the arithmetic of zones (and SQLite's
# text times) stops being safe, so those are refused.
TIME_WINDOW = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)

_SURROGATE = re.compile("[\ud800-\udfff]")
# Strict UTF-8 has no surrogates, so a lone one can only come from a JSON escape.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTAINERS = frozenset((dict, list))  # json.loads makes exactly these types


def _in_window(value: datetime) -> datetime:
    # Checked on the wall clock first: converting year 1 or 9999 to UTC overflows.
    low, high = TIME_WINDOW
    if not low.year - 1 < value.year < high.year + 1:
        raise ValueError(_window_message())
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not low <= utc < high:
        raise ValueError(_window_message())
    return utc


def _window_message() -> str:
    low, high = TIME_WINDOW
    return f"time must be from {low:%Y-%m-%d} to before {high:%Y-%m-%d} UTC"


def _end_or_unset(value: datetime | None) -> datetime | None:
    if value is None or value.year <= _ZERO_YEAR:
        return None
    return _in_window(value)


Time = Annotated[datetime, AfterValidator(_in_window)]
EndTime = Annotated[datetime | None, AfterValidator(_end_or_unset)]


class _Base(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class AMAlert(_Base):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: Time
    endsAt: EndTime = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _has_alertname(cls, labels: dict[str, str]) -> dict[str, str]:
        if not labels:
            raise ValueError("labels must not be empty")
        return labels

    def alert_fields(self, source: str) -> dict[str, Any]:
        """The fields of the Alert this becomes."""
        return {
            "fingerprint": self.fingerprint or fingerprint_of(self.labels),
            "status": AlertStatus(self.status),
            "labels": self.labels,
            "annotations": self.annotations,
            "starts_at": self.startsAt,
            "ends_at": self.endsAt,
            "generator_url": self.generatorURL,
            "source": source,
        }

    def to_alert(self, source: str) -> Alert:
        return Alert.model_validate(self.alert_fields(source))


class AlertmanagerPayload(_Base):
    version: str = "4"
    groupKey: str = Field(min_length=1, max_length=4096)
    truncatedAlerts: int = Field(default=0, ge=0, le=INT64[1])
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AMAlert] = Field(min_length=1, max_length=10000)

    def to_group(self, source: str = "alertmanager") -> AlertGroup:
        # Every field was validated as this payload's, with the types AlertGroup and Alert
        # declare (neither has a validator of its own): built, not validated a second time.
        return AlertGroup.model_construct(
            source=source,
            group_key=self.groupKey,
            group_labels=self.groupLabels,
            common_labels=self.commonLabels,
            common_annotations=self.commonAnnotations,
            external_url=self.externalURL,
            truncated_alerts=self.truncatedAlerts,
            alerts=[Alert.model_construct(**a.alert_fields(source)) for a in self.alerts],
        )


# Grafana's extras are kept as annotations (bot.models names the keys): the card turns
# the links into buttons and shows the values, Details lists them all. An annotation the
# sender set itself wins.
GRAFANA_TITLE = "grafana_title"
GRAFANA_MESSAGE = "grafana_message"
# The notification's message repeats every alert; kept once per alert, so bounded.
_MESSAGE_KEPT = 2000


def _values_text(values: dict[str, float] | None, value_string: str) -> str:
    if values:
        return ", ".join(f"{name}={value:.6g}" for name, value in sorted(values.items()))
    return value_string.strip()


class GrafanaAlert(AMAlert):
    """One alert of Grafana's webhook (its ExtendedAlert): Alertmanager's plus links and
    the query values that fired it."""

    silenceURL: str = ""
    dashboardURL: str = ""
    panelURL: str = ""
    values: dict[str, float] | None = None  # Go's nil map arrives as null
    valueString: str = ""
    imageURL: str = ""

    def to_alert(self, source: str, notes: dict[str, str] | None = None) -> Alert:
        alert = super().to_alert(source)
        extras = {
            GRAFANA_LINK_ANNOTATIONS["dashboard"]: self.dashboardURL.strip(),
            GRAFANA_LINK_ANNOTATIONS["panel"]: self.panelURL.strip(),
            GRAFANA_LINK_ANNOTATIONS["grafana_silence"]: self.silenceURL.strip(),
            VALUES_ANNOTATION: _values_text(self.values, self.valueString),
            **(notes or {}),
        }
        kept = {key: value for key, value in extras.items() if value}
        return alert.model_copy(update={"annotations": {**kept, **alert.annotations}})


class GrafanaPayload(AlertmanagerPayload):
    """Grafana's webhook contact point (version "1"): Alertmanager's base plus extras."""

    version: str = "1"
    alerts: list[GrafanaAlert] = Field(min_length=1, max_length=10000)  # type: ignore[assignment]
    title: str = ""
    state: str = ""
    message: str = ""
    orgId: int = 0

    def to_group(self, source: str = "grafana") -> AlertGroup:
        group = super().to_group(source)
        notes = {GRAFANA_TITLE: self.title.strip(),
                 GRAFANA_MESSAGE: self.message.strip()[:_MESSAGE_KEPT]}
        alerts = [a.to_alert(source, notes) for a in self.alerts]
        return group.model_copy(update={"alerts": alerts})


class GenericPayload(_Base):
    """For anything that can POST JSON: one alert per request (fields in the README)."""

    title: str = Field(min_length=1, max_length=500)
    message: str = Field(default="", max_length=20000)
    severity: str = Field(default="warning", max_length=50)
    status: Literal["firing", "resolved"] = "firing"
    id: str = Field(default="", max_length=500)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    url: str = Field(default="", validation_alias=AliasChoices("url", "generatorURL"))
    starts_at: Time | None = Field(default=None,
                                   validation_alias=AliasChoices("starts_at", "startsAt"))
    ends_at: EndTime = Field(default=None, validation_alias=AliasChoices("ends_at", "endsAt"))

    def to_group(self, received_at: datetime) -> AlertGroup:
        labels = {"alertname": self.title, "severity": self.severity, **self.labels}
        key = self.id or fingerprint_of(labels)
        notes = {"summary": self.title, "description": self.message}
        alert = Alert(
            fingerprint=fingerprint_of({"id": key}),
            status=AlertStatus(self.status),
            labels=labels,
            annotations={**{k: v for k, v in notes.items() if v}, **self.annotations},
            # Without a start time the alert started when it was received; ingest joins
            # it to the episode of the same id that is still firing, if there is one.
            starts_at=self.starts_at or received_at,
            start_known=self.starts_at is not None,
            ends_at=(self.ends_at or received_at) if self.status == "resolved" else None,
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


class _Unfit:
    """A JSON number we cannot hold, kept in place so the walk can name its field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Numbers:
    """json.loads' hooks for numbers and constants; remembers whether any was unfit."""

    def __init__(self) -> None:
        self.unfit = False

    def _unfit(self, reason: str) -> _Unfit:
        self.unfit = True
        return _Unfit(reason)

    def int(self, text: str) -> int | _Unfit:
        # Bounded before int(): a 5,000-digit literal would hit Python's int-string limit.
        if len(text.lstrip("-")) > 19 or not INT64[0] <= (value := int(text)) <= INT64[1]:
            return self._unfit("integer outside the 64-bit range")
        return value

    def float(self, text: str) -> float | _Unfit:
        value = float(text)
        return value if math.isfinite(value) else self._unfit("number too large")

    def constant(self, text: str) -> _Unfit:
        return self._unfit(f"{text} is not JSON")


def _too_deep(data: Any) -> bool:
    """More than MAX_DEPTH levels of arrays and objects, counted level by level over the
    containers only (the parser's own recursion limit stops a body deeper than that)."""
    level = [data] if type(data) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return True
        inner = []
        for container in level:
            for value in container.values() if type(container) is dict else container:
                if type(value) in _CONTAINERS:
                    inner.append(value)
        level = inner
    return False


def _unfit_field(data: Any) -> tuple[str, str] | None:
    """The first value no store can hold: (field path, reason)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, _Unfit):
            return _field_path(loc), value.reason
        if isinstance(value, str) and _SURROGATE.search(value):
            return _field_path(loc), "text holds a lone UTF-16 surrogate (not UTF-8)"
        if isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    return _field_path(loc), "a key holds a lone UTF-16 surrogate (not UTF-8)"
                stack.append(((*loc, key), item))
        elif isinstance(value, list):
            stack.extend(((*loc, i), item) for i, item in enumerate(value))
    return None


def decode_json(raw: bytes) -> Any:
    """Strict UTF-8 JSON within the bounds above, or PayloadError naming the problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start}): {exc.reason}") from exc
    text = text.removeprefix("\ufeff")
    numbers = _Numbers()
    too_deep = PayloadError(f"body is nested deeper than {MAX_DEPTH} levels")
    try:
        data = json.loads(text, parse_int=numbers.int, parse_float=numbers.float,
                          parse_constant=numbers.constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise too_deep from None
    if _too_deep(data):
        raise too_deep
    # The walk that names the field is needed only when something unfit may be there.
    unfit = (_unfit_field(data) if numbers.unfit or _SURROGATE_ESCAPE.search(text)
             else None)
    if unfit is not None:
        field, reason = unfit
        raise PayloadError(f"{field}: {reason}", [{"field": field, "message": reason}])
    return data


def parse(kind: str, raw: bytes, received_at: datetime) -> AlertGroup:
    """Bytes of a webhook body -> AlertGroup, or PayloadError naming what is wrong."""
    data = decode_json(raw)
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
            {"field": _field_path(tuple(e["loc"])),
             "message": e["msg"].removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        first = fields[0]
        raise PayloadError(
            f"invalid {kind} payload: {first['field']}: {first['message']}", fields
        ) from exc
