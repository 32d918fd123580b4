"""Grafana's webhook contact point and the generic endpoint, end to end on the real app.

The Grafana body is written to Grafana's documented format (tests/fixtures/grafana/README.md).
The signature follows Grafana's own signer, grafana/alerting http/hmac.go: lowercase hex
HMAC-SHA256 of the raw body with the secret, in X-Grafana-Alerting-Signature (the header the
contact point form suggests; X-Grafana-Alert-Signature when that field is left empty), and
with a timestamp header configured, of "<unix seconds>:<body>".
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import ALICE, FIXTURES, AppFactory, Harness

from bot.alerts.payloads import parse
from bot.cards.links import extra_links
from storage import repo

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
SECRET = "grafana-shared-secret"


def grafana_body(**changes: Any) -> dict[str, Any]:
    body = json.loads((FIXTURES / "grafana" / "firing.json").read_text())
    body.update(changes)
    return body


def raw(data: object) -> bytes:
    return json.dumps(data).encode()


def grafana_signature(body: bytes, timestamp: str = "") -> str:
    # As grafana/alerting http/hmac.go: hash.Write(timestamp); hash.Write(":"); hash.Write(body)
    mac = hmac.new(SECRET.encode(), digestmod=hashlib.sha256)
    if timestamp:
        mac.update(timestamp.encode())
        mac.update(b":")
    mac.update(body)
    return mac.hexdigest()


def buttons(message: dict[str, Any]) -> dict[str, str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return {b["text"]: b.get("url", "") for row in rows for b in row}


# --- parsing -------------------------------------------------------------------------


def test_grafana_extras_are_kept_as_annotations() -> None:
    group = parse("grafana", raw(grafana_body()), NOW)
    alert = group.alerts[0]
    sent = grafana_body()["alerts"][0]
    assert alert.annotations["grafana_dashboard_url"] == sent["dashboardURL"]
    assert alert.annotations["grafana_panel_url"] == sent["panelURL"]
    assert alert.annotations["grafana_silence_url"] == sent["silenceURL"]
    assert alert.annotations["grafana_values"] == "B=0.921438, C=1"
    assert alert.annotations["grafana_title"].startswith("[FIRING:1] High memory usage")
    assert alert.annotations["grafana_message"].startswith("**Firing**")
    assert alert.annotations["summary"] == "cart is close to its memory limit"
    assert extra_links([alert]) == [("dashboard", sent["dashboardURL"]),
                                    ("panel", sent["panelURL"]),
                                    ("grafana_silence", sent["silenceURL"])]


def test_grafana_value_string_when_values_are_null() -> None:
    body = grafana_body()
    body["alerts"][0]["values"] = None  # Go's nil map
    body["alerts"][0]["dashboardURL"] = body["alerts"][0]["panelURL"] = ""
    alert = parse("grafana", raw(body), NOW).alerts[0]
    assert alert.annotations["grafana_values"].startswith("[ var='B'")
    assert "grafana_dashboard_url" not in alert.annotations
    assert [key for key, _ in extra_links([alert])] == ["grafana_silence"]


def test_a_senders_own_annotation_wins() -> None:
    body = grafana_body()
    body["alerts"][0]["annotations"]["grafana_values"] = "set by the rule"
    assert parse("grafana", raw(body), NOW).alerts[0].annotations["grafana_values"] == (
        "set by the rule")


@pytest.mark.parametrize("field", ["startsAt", "starts_at"])
def test_generic_takes_both_spellings_of_the_start(field: str) -> None:
    group = parse("generic", raw({"title": "Disk full", field: "2026-11-27T12:00:00Z",
                                  "labels": {"host": "db-1"},
                                  "annotations": {"runbook_url": "https://wiki.shop.io/disk"},
                                  "url": "https://grafana.shop.io/d/disk"}), NOW)
    alert = group.alerts[0]
    assert alert.starts_at == datetime(2026, 11, 27, 12, 0, tzinfo=UTC) and alert.start_known
    assert alert.labels["host"] == "db-1"
    assert alert.annotations["runbook_url"] == "https://wiki.shop.io/disk"
    assert alert.generator_url == "https://grafana.shop.io/d/disk"


def test_generic_without_a_start_started_when_received() -> None:
    alert = parse("generic", raw({"title": "Disk full"}), NOW).alerts[0]
    assert alert.starts_at == NOW and not alert.start_known


# --- end to end ----------------------------------------------------------------------


async def test_grafana_card_has_link_buttons_values_and_details(app: Harness) -> None:
    status, body = await app.post("/alerts/grafana", raw(grafana_body()))
    assert status == 200, body
    card = await app.wait_card()
    sent = grafana_body()["alerts"][0]
    urls = buttons(card)
    assert urls["📊 Dashboard"] == sent["dashboardURL"]
    assert urls["🖼 Panel"] == sent["panelURL"]
    assert urls["🔇 Silence in Grafana"] == sent["silenceURL"]
    assert urls["📈 Source"] == sent["generatorURL"]
    assert "Values: B=0.921438, C=1" in card["text"]
    await app.press(card["message_id"], "Details", ALICE)
    await app.settled()
    details = " ".join(r["text"] for r in app.replies_to(card["message_id"]))
    assert "[FIRING:1] High memory usage" in details  # the notification's title
    assert "**Firing**" in details  # and its message


async def test_grafana_links_telegram_refuses_are_text(app: Harness) -> None:
    body = grafana_body()
    body["alerts"][0]["dashboardURL"] = "http://grafana.svc.cluster.local:3000/d/cart-mem"
    status, _ = await app.post("/alerts/grafana", raw(body))
    assert status == 200
    card = await app.wait_card()
    assert "📊 Dashboard" not in buttons(card)
    assert "Dashboard: http://grafana.svc.cluster.local:3000/d/cart-mem" in card["text"]
    assert "🖼 Panel" in buttons(card)


async def open_count(app: Harness) -> int:
    async with app.db.read() as conn:
        return len(await repo.open_incidents(conn))


@pytest.mark.parametrize("header", ["X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"])
async def test_grafana_signature_is_checked(start_app: AppFactory, header: str) -> None:
    app = await start_app(grafana_webhook_secret=SECRET)
    data = raw(grafana_body())
    status, body = await app.post("/alerts/grafana", data)
    assert status == 401 and "X-Grafana-Alerting-Signature" in body["error"]
    status, body = await app.post("/alerts/grafana", data,
                                  headers={header: grafana_signature(data + b" ")})
    assert status == 401 and "wrong HMAC signature" in body["error"]
    assert await open_count(app) == 0, "a refused body stores nothing"
    status, body = await app.post("/alerts/grafana", data,
                                  headers={header: grafana_signature(data)})
    assert status == 200, body
    await app.wait_card()


async def test_grafana_signature_with_a_timestamp(start_app: AppFactory) -> None:
    app = await start_app(grafana_webhook_secret=SECRET,
                          grafana_webhook_timestamp_header="X-Grafana-Alerting-Signature-Timestamp")
    data = raw(grafana_body())
    now = str(int(time.time()))
    signed = {"X-Grafana-Alerting-Signature": grafana_signature(data, now),
              "X-Grafana-Alerting-Signature-Timestamp": now}
    old = str(int(time.time()) - 3600)
    replayed = {"X-Grafana-Alerting-Signature": grafana_signature(data, old),
                "X-Grafana-Alerting-Signature-Timestamp": old}
    body_only = {"X-Grafana-Alerting-Signature": grafana_signature(data),
                 "X-Grafana-Alerting-Signature-Timestamp": now}
    for headers, problem in ((replayed, "away from this server's clock"),
                             (body_only, "wrong HMAC signature")):
        status, body = await app.post("/alerts/grafana", data, headers=headers)
        assert status == 401 and problem in body["error"], body
    assert await open_count(app) == 0
    status, body = await app.post("/alerts/grafana", data, headers=signed)
    assert status == 200, body


async def test_grafana_authorization_header_and_basic_auth(start_app: AppFactory) -> None:
    app = await start_app(alert_webhook_token="tok-123")
    data = raw(grafana_body())
    basic = base64.b64encode(b"grafana:tok-123").decode()
    wrong = base64.b64encode(b"grafana:nope").decode()
    assert (await app.post("/alerts/grafana", data))[0] == 401
    assert (await app.post("/alerts/grafana", data,
                           headers={"Authorization": f"Basic {wrong}"}))[0] == 401
    assert (await app.post("/alerts/grafana", data,
                           headers={"Authorization": "Basic !!not-base64"}))[0] == 401
    assert (await app.post("/alerts/grafana", data,
                           headers={"Authorization": f"Basic {basic}"}))[0] == 200
    again = copy.deepcopy(grafana_body())
    again["alerts"][0]["fingerprint"] = "d00d"
    assert (await app.post("/alerts/grafana", raw(again),
                           headers={"Authorization": "Bearer tok-123"}))[0] == 200


async def test_generic_without_start_is_one_episode_never_1970(app: Harness) -> None:
    alert = {"title": "Backup failed", "id": "backup-nightly", "severity": "critical",
             "labels": {"job": "backup"}}
    before = datetime.now(UTC)
    status, first = await app.post("/alerts/generic", alert)
    assert status == 200, first
    card = await app.wait_card()
    assert "1970" not in card["text"]
    incident_id = first["incidents"][0]
    status, again = await app.post("/alerts/generic", alert)  # a re-post: same episode
    assert status == 200 and again["incidents"] == [incident_id] and not again["opened"]
    async with app.db.read() as conn:
        alerts = await repo.alerts_of(conn, incident_id)
        incident = await repo.get_incident(conn, incident_id)
    assert len(alerts) == 1
    assert incident is not None and before <= incident.opened_at <= datetime.now(UTC)
    status, done = await app.post("/alerts/generic", {**alert, "status": "resolved"})
    assert status == 200 and done["resolved"] == [incident_id], done


async def test_generic_camel_case_start_is_on_the_card(app: Harness) -> None:
    status, _ = await app.post("/alerts/generic", {
        "title": "Queue stuck", "startsAt": "2026-11-27T12:34:00Z",
        "annotations": {"summary": "orders queue has not moved for 10 minutes"}})
    assert status == 200
    card = await app.wait_card()
    assert "since 2026-11-27 12:34 UTC" in card["text"]
    assert "orders queue has not moved" in card["text"]
