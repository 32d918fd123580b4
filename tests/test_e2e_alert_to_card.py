"""Alert -> card -> resolved, end to end over HTTP against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import CHAT, AppFactory, Harness, fixture, fixture_bytes
from pg import write_lock_held

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator


async def _db_snapshot(h: Harness) -> dict[str, int]:
    return {t: h.rows(f"SELECT COUNT(*) FROM {t}")[0][0]
            for t in ("incidents", "alerts", "decisions", "outbox", "cards")}


async def test_firing_alert_becomes_one_card_with_buttons(app: Harness) -> None:
    body = await app.alert("crashloop-firing.json")
    assert len(body["opened"]) == 1
    inc_id = body["opened"][0]
    await app.settled()
    cards = app.cards()
    assert len(cards) == 1
    card = cards[0]
    text = card["text"]
    assert "LabPodCrashLooping" in text and "cart" in text
    assert inc_id in text
    assert "shop" in text
    assert "1 alert firing" in text
    assert "LabPodCrashLooping in namespace shop" in text  # summary annotation
    assert "13:07" in text  # startsAt in TIMEZONE (UTC)
    # The generatorURL points at 127.0.0.1: not a link Telegram accepts, so it is text.
    assert "http://127.0.0.1/amlab/LabPodCrashLooping" in text
    buttons = [b for row in card["reply_markup"]["inline_keyboard"] for b in row]
    labels = [b["text"] for b in buttons]
    for word in ("Approve", "Reject", "Details", "History", "Re-analyze", "Silence"):
        assert any(word in label for label in labels), (word, labels)
    assert not any("url" in b for b in buttons)
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons)


async def test_url_buttons_only_for_links_telegram_accepts(app: Harness) -> None:
    payload = fixture("single-firing.json")
    payload["alerts"][0]["generatorURL"] = "https://prometheus.example.com/graph?g0.expr=up"
    payload["alerts"][0]["annotations"]["runbook_url"] = "http://prometheus-0:9090/runbook"
    status, _ = await app.post("/alerts/alertmanager", payload)
    assert status == 200
    await app.settled()
    (card,) = app.cards()
    urls = [b for row in card["reply_markup"]["inline_keyboard"] for b in row if "url" in b]
    assert [b["url"] for b in urls] == ["https://prometheus.example.com/graph?g0.expr=up"]
    assert "http://prometheus-0:9090/runbook" in card["text"]


async def test_refused_button_url_keeps_the_link_as_text(app: Harness) -> None:
    # The link looks acceptable, so it becomes a button; Telegram refuses it anyway.
    link = "https://prometheus.example.com/graph?g0.expr=up"
    app.em.refuse_button_urls("prometheus.example.com")
    payload = fixture("single-firing.json")
    payload["alerts"][0]["generatorURL"] = link
    status, _ = await app.post("/alerts/alertmanager", payload)
    assert status == 200
    await app.settled()
    (card,) = app.cards()
    buttons = [b for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert not any("url" in b for b in buttons)
    assert any("Approve" in b["text"] for b in buttons)
    assert link in card["text"]
    # Once for the post, and again for each edit that lands after it (analysis).
    assert app.delivery.metrics.sample("opsgate_delivery_total", result="url_fallback") >= 1
    # Later edits of the same card keep the link too.
    resolved = fixture("single-resolved.json")
    resolved["alerts"][0]["generatorURL"] = link
    status, _ = await app.post("/alerts/alertmanager", resolved)
    assert status == 200
    await app.settled()
    edited = app.em.message(CHAT, card["message_id"])
    assert edited["edit_count"] > card["edit_count"]
    assert "RESOLVED" in edited["text"].upper()
    assert link in edited["text"]


async def test_redelivery_posts_nothing_new(app: Harness) -> None:
    await app.alert("two-alerts-firing.json")
    await app.settled()
    sends = len(app.em.calls("sendMessage"))
    edits = len(app.em.calls("editMessageText"))
    for _ in range(3):
        again = await app.alert("two-alerts-firing.json")
        assert again["opened"] == []
    await app.settled()
    assert len(app.cards()) == 1
    assert len(app.em.calls("sendMessage")) == sends
    assert len(app.em.calls("editMessageText")) == edits
    async with app.db.read() as conn:
        async with conn.execute("SELECT COUNT(*) FROM alerts") as cur:
            assert (await cur.fetchone())[0] == 2


async def test_resolve_edits_same_message_and_replies_in_thread(app: Harness) -> None:
    await app.alert("single-firing.json")
    await app.settled()
    (card,) = app.cards()
    await app.alert("single-resolved.json")
    await app.settled()
    assert len(app.cards()) == 1
    edited = app.em.message(CHAT, card["message_id"])
    assert "RESOLVED" in edited["text"].upper()
    assert edited["edit_count"] > card["edit_count"]
    replies = app.replies_to(card["message_id"])
    resolved = [r for r in replies if "Resolved at" in r["text"]]
    assert len(resolved) == 1
    # Approve/Reject are gone on a resolved card; info buttons stay.
    labels = [b["text"] for row in edited["reply_markup"]["inline_keyboard"] for b in row]
    assert not any("Approve" in t for t in labels)
    assert any("Details" in t for t in labels)


async def test_partial_resolve_keeps_incident_firing(app: Harness) -> None:
    await app.alert("two-alerts-firing.json")
    await app.settled()
    await app.alert("two-alerts-one-resolved.json")
    await app.settled()
    (card,) = app.cards()
    assert "1 alert firing" in card["text"]
    assert not [r for r in app.replies_to(card["message_id"]) if "Resolved" in r["text"]]


async def test_refire_after_resolve_opens_new_incident(app: Harness) -> None:
    first = await app.alert("single-firing.json")
    await app.alert("single-resolved.json")
    payload = fixture("single-firing.json")
    payload["alerts"][0]["startsAt"] = "2026-11-27T14:00:00Z"
    status, second = await app.post("/alerts/alertmanager", payload)
    assert status == 200
    assert second["opened"] and second["opened"] != first["opened"]
    await app.settled()
    assert len(app.cards()) == 2


async def test_restart_between_firing_and_resolving(
    start_app: AppFactory, emu: RunningEmulator
) -> None:
    first = await start_app()
    await first.alert("crashloop-firing.json")
    await first.settled()
    (card,) = first.cards()
    await first.app.stop()

    second = await start_app()
    resolved = fixture("crashloop-firing.json")
    resolved["status"] = "resolved"
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-27T13:19:56.436Z"
    status, _ = await second.post("/alerts/alertmanager", resolved)
    assert status == 200
    await second.settled()
    assert len(second.cards()) == 1
    msg = second.em.message(CHAT, card["message_id"])
    assert "RESOLVED" in msg["text"].upper()
    assert any("after 12m" in r["text"] for r in second.replies_to(card["message_id"]))


async def test_429_and_500_still_deliver_exactly_once(app: Harness) -> None:
    app.em.inject_fault("sendMessage", 429, retry_after=1)
    app.em.inject_fault("sendMessage", 500)
    await app.alert("single-firing.json")
    await app.settled(timeout=30)
    assert len(app.cards()) == 1
    failed = [c for c in app.em.calls("sendMessage") if not c["ok"]]
    assert [c["error_code"] for c in failed] == [429, 500]


async def test_permanent_error_is_parked_and_does_not_block(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    app.em.inject_fault("sendMessage", 400, "Bad Request: chat not found")
    first = await app.alert("single-firing.json")
    await app.alert("crashloop-firing.json")
    await app.settled()
    # The first send was refused for good and parked; the other incident still got its card.
    assert any("LabPodCrashLooping" in c["text"] for c in app.cards())
    assert any("DELIVERY PARKED" in r.message and first["opened"][0] in r.message
               for r in caplog.records)
    async with app.db.read() as conn:
        async with conn.execute("SELECT COUNT(*) FROM outbox WHERE state='parked'") as cur:
            assert (await cur.fetchone())[0] == 1


async def test_bad_requests_change_nothing(start_app: AppFactory, tmp_path: Path) -> None:
    h = await start_app(alert_webhook_token="s3cret", max_body_bytes=64 * 1024)
    auth = {"Authorization": "Bearer s3cret"}
    before = await _db_snapshot(h)

    status, body = await h.post("/alerts/alertmanager", fixture_bytes("single-firing.json"))
    assert status == 401
    status, _ = await h.post("/alerts/alertmanager", fixture_bytes("single-firing.json"),
                             headers={"Authorization": "Bearer wrong"})
    assert status == 401

    status, body = await h.post("/alerts/alertmanager", b"{not json", headers=auth)
    assert status == 400 and "JSON" in body["error"]

    storm = fixture("group-of-25-firing.json")
    storm["alerts"][16]["startsAt"] = "yesterday-ish"
    status, body = await h.post("/alerts/alertmanager", storm, headers=auth)
    assert status == 400
    assert body["fields"][0]["field"] == "alerts[16].startsAt"

    missing = fixture("single-firing.json")
    del missing["groupKey"]
    status, body = await h.post("/alerts/alertmanager", missing, headers=auth)
    assert status == 400 and "groupKey" in body["error"]

    status, body = await h.post("/alerts/alertmanager", b"{" + b" " * (70 * 1024) + b"}",
                                headers=auth)
    assert status == 413

    assert await _db_snapshot(h) == before
    status, _ = await h.post("/alerts/alertmanager", fixture_bytes("single-firing.json"),
                             headers=auth)
    assert status == 200


async def test_database_locked_answers_503_and_writes_nothing(
    start_app: AppFactory,
) -> None:
    h = await start_app(database_busy_timeout="200ms")
    before = await _db_snapshot(h)
    async with write_lock_held(h.db_target):
        status, body = await h.post("/alerts/alertmanager", fixture_bytes("single-firing.json"))
    assert status == 503, body
    assert await _db_snapshot(h) == before
    status, _ = await h.post("/alerts/alertmanager", fixture_bytes("single-firing.json"))
    assert status == 200


async def test_storm_of_25_is_one_card(app: Harness) -> None:
    await app.alert("group-of-25-firing.json")
    await app.settled()
    (card,) = app.cards()
    assert "25 alerts firing" in card["text"]
    await app.alert("group-of-25-resolved.json")
    await app.settled()
    msg = app.em.message(CHAT, card["message_id"])
    assert "RESOLVED" in msg["text"].upper()


async def test_generic_and_grafana_webhooks(app: Harness) -> None:
    status, body = await app.post("/alerts/generic", {"title": "Backup failed", "message": "x",
                                                      "severity": "critical", "id": "b-1"})
    assert status == 200, body
    grafana = fixture("single-firing.json")
    grafana["version"] = "1"
    grafana["groupKey"] = "grafana-group"
    grafana["title"] = "[FIRING:1] LabHighErrorRate"
    status, body = await app.post("/alerts/grafana", grafana)
    assert status == 200, body
    await app.settled()
    texts = [c["text"] for c in app.cards()]
    assert any("Backup failed" in t for t in texts)
    assert any("LabHighErrorRate" in t for t in texts)
    status, body = await app.post("/alerts/generic", {"message": "no title"})
    assert status == 400 and body["fields"][0]["field"] == "title"


async def test_healthz_and_metrics(app: Harness) -> None:
    await app.alert("single-firing.json")
    await app.settled()
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(app.url + "/healthz") as resp:
            health = json.loads(await resp.text())
        async with http.get(app.url + "/metrics") as resp:
            metrics = await resp.text()
    assert health["status"] == "ok"
    assert 'opsgate_delivery_total{result="sent"} 1' in metrics
    await wait_for(lambda: True)


async def test_startup_says_clearly_when_the_chat_is_unreachable(start_app: AppFactory) -> None:
    import pytest

    from bot.app import StartupError

    with pytest.raises(StartupError, match=r"chat -100777: the bot cannot reach it.*not found"):
        await start_app(chat=-100777)
