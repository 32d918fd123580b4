"""Webhook payload parsing: real Alertmanager captures and malformed variants."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from harness import FIXTURES, fixture

from bot.alerts.payloads import PayloadError, parse
from bot.models import AlertStatus

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def _raw(data: object) -> bytes:
    return json.dumps(data).encode()


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_every_captured_payload_parses(name: str) -> None:
    data = fixture(name)
    group = parse("alertmanager", _raw(data), NOW)
    assert group.group_key == data["groupKey"]
    assert group.group_labels == data["groupLabels"]
    assert len(group.alerts) == len(data["alerts"])
    for alert, raw in zip(group.alerts, data["alerts"], strict=True):
        assert alert.fingerprint == raw["fingerprint"]
        assert alert.status is AlertStatus(raw["status"])
        assert alert.starts_at.tzinfo is not None
        if raw["status"] == "firing":
            assert alert.ends_at is None  # "0001-01-01T00:00:00Z" means "not ended"
        else:
            assert alert.ends_at is not None and alert.ends_at > alert.starts_at


def test_fractional_seconds_without_trailing_zeros_and_extra_fields() -> None:
    data = fixture("single-firing.json")
    data["alerts"][0]["startsAt"] = "2026-11-27T13:07:40.23Z"
    data["notification_reason"] = "first notification"
    data["routeLabels"] = {"team": "payments"}
    data["truncatedAlerts"] = 3
    group = parse("alertmanager", _raw(data), NOW)
    assert group.alerts[0].starts_at == datetime(2026, 11, 27, 13, 7, 40, 230000, tzinfo=UTC)
    assert group.truncated_alerts == 3


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("groupKey"), "groupKey"),
        (lambda d: d.update(alerts=[]), "alerts"),
        (lambda d: d.update(status="burning"), "status"),
        (lambda d: d["alerts"][0].update(status="maybe"), "alerts[0].status"),
        (lambda d: d["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda d: d["alerts"][0].update(labels={}), "alerts[0].labels"),
        (lambda d: d["alerts"][0]["labels"].update(severity=3), "alerts[0].labels.severity"),
        (lambda d: d.update(truncatedAlerts=-1), "truncatedAlerts"),
    ],
)
def test_invalid_payloads_name_the_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = fixture("single-firing.json")
    mutate(data)
    with pytest.raises(PayloadError) as err:
        parse("alertmanager", _raw(data), NOW)
    assert err.value.fields[0]["field"] == field
    assert field in err.value.message


def test_the_seventeenth_bad_alert_fails_the_whole_payload() -> None:
    data = fixture("group-of-25-firing.json")
    data["alerts"][16]["endsAt"] = "not a time"
    with pytest.raises(PayloadError) as err:
        parse("alertmanager", _raw(data), NOW)
    assert err.value.fields[0]["field"] == "alerts[16].endsAt"


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'"text"', b"\xff\xfe", b"null"])
def test_not_a_json_object(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse("alertmanager", body, NOW)


def test_grafana_and_generic_shapes() -> None:
    grafana = fixture("single-firing.json") | {"version": "1", "state": "alerting",
                                                 "title": "[FIRING:1]", "orgId": 1}
    grafana["alerts"][0] |= {"silenceURL": "https://g/s", "values": {"A": 1.0}}
    assert parse("grafana", _raw(grafana), NOW).source == "grafana"
    generic = parse("generic", _raw({"title": "Backup failed", "status": "resolved",
                                     "id": "b-1"}), NOW)
    assert generic.alerts[0].status is AlertStatus.RESOLVED
    assert generic.alerts[0].ends_at == NOW
    again = parse("generic", _raw({"title": "Backup failed", "id": "b-1"}), NOW)
    # The same id is the same alert episode (so a re-send updates it).
    assert again.alerts[0].fingerprint == generic.alerts[0].fingerprint
    assert again.group_key == generic.group_key
