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


def _with(raw: bytes, marker: bytes, replacement: bytes) -> bytes:
    assert marker in raw
    return raw.replace(marker, replacement, 1)


def _body(**top: object) -> bytes:
    return _raw(fixture("single-firing.json") | top)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        # A lone surrogate, escaped in JSON or as raw bytes (ED A0 80), never reaches storage.
        (_with(_body(), b'"severity": "critical"', b'"severity": "\\ud800"'),
         "alerts[0].labels.severity: text holds a lone UTF-16 surrogate"),
        (_with(_body(), b'"severity": "critical"', b'"\\udc00": "x"'),
         "alerts[0].labels: a key holds a lone UTF-16 surrogate"),
        (_with(_body(), b'"critical"', b'"\xed\xa0\x80"'), "body is not UTF-8"),
        (json.dumps(fixture("single-firing.json")).encode("utf-16"), "body is not UTF-8"),
        (_body(truncatedAlerts=2**63), "truncatedAlerts: integer outside the 64-bit range"),
        (_with(_body(x=0), b'"x": 0', b'"x": ' + b"7" * 4301),
         "x: integer outside the 64-bit range"),
        (_with(_body(x=0), b'"x": 0', b'"x": -9223372036854775809'),
         "x: integer outside the 64-bit range"),
        (_with(_body(x=0), b'"x": 0', b'"x": 1e400'), "x: number too large"),
        (_with(_body(x=0), b'"x": 0', b'"x": NaN'), "x: NaN is not JSON"),
        (_with(_body(x=0), b'"x": 0', b'"x": ' + b"[" * 1000 + b"]" * 1000),
         "nested deeper than 32 levels"),
        (_with(_body(x=0), b'"x": 0', b'"x": ' + b'{"a":' * 40 + b"1" + b"}" * 40),
         "nested deeper than 32 levels"),
    ],
)
def test_hostile_bodies_are_refused_naming_the_problem(raw: bytes, problem: str) -> None:
    with pytest.raises(PayloadError) as err:
        parse("alertmanager", raw, NOW)
    assert problem in err.value.message


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    group = parse("alertmanager", _body(note="[" * 5000 + '\\"{' * 100), NOW)
    assert group.alerts


def test_the_largest_64_bit_integer_is_accepted() -> None:
    group = parse("alertmanager", _body(truncatedAlerts=2**63 - 1), NOW)
    assert group.truncated_alerts == 2**63 - 1


@pytest.mark.parametrize("offset", ["Z", "+01:00", "-01:00", "+14:00", "-12:00"])
def test_go_zero_time_means_not_ended_in_any_zone(offset: str) -> None:
    data = fixture("single-firing.json")
    data["alerts"][0]["endsAt"] = "0001-01-01T00:00:00" + offset
    assert parse("alertmanager", _raw(data), NOW).alerts[0].ends_at is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "0001-01-01T00:00:00+01:00"),
        ("startsAt", "0001-01-01T00:00:00Z"),
        ("startsAt", "1969-12-31T23:59:59Z"),
        ("startsAt", "2199-12-31T23:30:00-01:00"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
        ("endsAt", "9999-12-31T23:59:59-01:00"),
        ("endsAt", "0002-01-01T00:00:00Z"),
    ],
)
def test_times_outside_the_window_are_refused(field: str, value: str) -> None:
    data = fixture("single-resolved.json")
    data["alerts"][0][field] = value
    with pytest.raises(PayloadError) as err:
        parse("alertmanager", _raw(data), NOW)
    assert err.value.fields[0]["field"] == f"alerts[0].{field}"
    assert err.value.message.endswith("time must be from 1970-01-01 to before 2200-01-01 UTC")


def test_edges_of_the_window_convert_to_utc() -> None:
    data = fixture("single-resolved.json")
    data["alerts"][0]["startsAt"] = "1970-01-01T00:30:00+00:30"
    data["alerts"][0]["endsAt"] = "2199-12-31T23:59:59-00:00"
    alert = parse("alertmanager", _raw(data), NOW).alerts[0]
    assert alert.starts_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert alert.ends_at == datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_generic_start_time_is_bounded_too() -> None:
    with pytest.raises(PayloadError) as err:
        parse("generic", _raw({"title": "t", "starts_at": "0001-01-01T00:00:00+01:00"}), NOW)
    assert err.value.fields[0]["field"] == "starts_at"
