"""/metrics of the real app: the families the README lists, present from the start, and
fed by what really happened (webhooks, Telegram calls, presses, executions)."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
from harness import ALICE, AppFactory, Harness, fixture_bytes
from prometheus_client.parser import text_string_to_metric_families

from sandbox.emulator import wait_for

README = Path(__file__).resolve().parent.parent / "README.md"


async def scrape(h: Harness) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(h.url + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return await resp.text()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    found = samples(text).get((name, frozenset(labels.items())))
    assert found is not None, f"no series {name}{labels}"
    return found


def readme_families() -> dict[str, str]:
    rows = re.findall(r"^\| `(opsgate_[a-z_]+)` \| (counter|gauge|histogram) \|",
                      README.read_text(), re.M)
    return dict(rows)


async def test_readme_lists_exactly_what_a_fresh_app_exposes(app: Harness) -> None:
    text = await scrape(app)
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", text, re.M))
    exposed = {(name + "_total" if kind == "counter" and not name.endswith("_total") else name):
               kind for name, kind in types.items()}
    assert exposed == readme_families()
    assert set(helps) == set(types) and all(h.strip() for h in helps.values())
    # Labelled series exist at zero before anything happened.
    assert value(text, "opsgate_alerts_received_total", source="grafana", result="refused") == 0
    assert value(text, "opsgate_decisions", state="pending") == 0
    assert value(text, "opsgate_incidents_open", severity="critical") == 0
    assert value(text, "opsgate_executor_runs_total", result="failed") == 0
    assert value(text, "opsgate_telegram_calls_total", method="sendMessage",
                 result="rate_limited") == 0
    assert value(text, "opsgate_ready_degraded", reason="telegram") == 0
    assert value(text, "opsgate_alert_to_card_seconds_count") == 0
    # What start-up itself did is counted already.
    assert value(text, "opsgate_telegram_calls_total", method="getMe", result="ok") >= 1
    assert value(text, "opsgate_telegram_last_reached_timestamp_seconds") > 0


async def test_an_alert_a_press_and_an_execution_are_counted(app: Harness) -> None:
    body = await app.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await app.settled()
    card = await app.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    text = await scrape(app)
    assert value(text, "opsgate_alerts_received_total", source="alertmanager",
                 result="accepted") == 1
    assert value(text, "opsgate_alerts_stored_total", source="alertmanager") == body["alerts"]
    assert value(text, "opsgate_alert_to_card_seconds_count") == 1
    assert value(text, "opsgate_incidents_open", severity="warning") == 1
    assert value(text, "opsgate_decisions", state="pending") == 1
    assert value(text, "opsgate_delivery_total", result="sent") == 1

    await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    text = await scrape(app)
    assert value(text, "opsgate_press_to_answer_seconds_count") == 1
    assert value(text, "opsgate_telegram_calls_total", method="answerCallbackQuery",
                 result="ok") == 1
    assert value(text, "opsgate_executor_runs_total", result="succeeded") == 1
    assert value(text, "opsgate_decisions", state="succeeded") == 1
    assert value(text, "opsgate_decisions", state="pending") == 0
    assert value(text, "opsgate_outbox_rows", state="pending") == 0
    assert value(text, "opsgate_outbox_oldest_pending_age_seconds") == 0

    status, _ = await app.post("/alerts/generic", b"{not json")
    assert status == 400
    text = await scrape(app)
    assert value(text, "opsgate_alerts_received_total", source="generic", result="refused") == 1


async def test_unauthorized_and_rate_limited(start_app: AppFactory) -> None:
    app = await start_app(alert_webhook_token="s3cret")
    status, _ = await app.post("/alerts/grafana", fixture_bytes("crashloop-firing.json"))
    assert status == 401
    app.em.inject_fault("sendMessage", 429, retry_after=1)
    await app.alert("crashloop-firing.json", headers={"Authorization": "Bearer s3cret"})
    await app.settled()
    await app.wait_card()
    text = await scrape(app)
    assert value(text, "opsgate_alerts_received_total", source="grafana",
                 result="unauthorized") == 1
    assert value(text, "opsgate_telegram_rate_limited_total") == 1
    assert value(text, "opsgate_telegram_calls_total", method="sendMessage",
                 result="rate_limited") == 1
    assert value(text, "opsgate_delivery_total", result="retry_after") == 1


async def test_outbox_age_grows_while_telegram_refuses(start_app: AppFactory) -> None:
    app = await start_app()
    app.em.inject_fault("sendMessage", 502, count=1000)
    await app.alert("crashloop-firing.json")

    async def waiting() -> bool:
        text = await scrape(app)
        return (value(text, "opsgate_outbox_oldest_pending_age_seconds") > 0
                and value(text, "opsgate_telegram_calls_total", method="sendMessage",
                          result="server_error") >= 1)

    await wait_for(waiting, 15, message="outbox age not reported")
    app.em.clear_faults()
