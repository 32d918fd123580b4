"""/healthz and /readyz of the real app: 503 only when alerts cannot be stored; Telegram down
or a stuck outbox are reported as degraded with a 200, and alerts are still accepted."""

from __future__ import annotations

from typing import Any

import aiohttp
from harness import ALICE, CHAT, AppFactory, Harness, fixture_bytes
from pg import write_lock_held

from sandbox.emulator import wait_for


async def get(h: Harness, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(h.url + path) as resp:
            return resp.status, await resp.json()


async def test_a_fresh_app_is_alive_and_ready(app: Harness) -> None:
    assert await get(app, "/healthz") == (200, {"status": "ok"})
    assert await get(app, "/readyz") == (200, {"status": "ready", "role": "leader",
                                               "degraded": {}})


async def test_telegram_down_is_degraded_not_unready(start_app: AppFactory) -> None:
    app = await start_app(telegram_unreachable_after="1s")
    for method in ("getUpdates", "sendMessage"):
        app.em.inject_fault(method, 502, count=10_000)
    # Ends the long poll in flight, so the next getUpdates meets the fault.
    app.em.user_sends(CHAT, ALICE, "hello")

    async def degraded() -> dict[str, Any] | None:
        status, body = await get(app, "/readyz")
        assert status == 200, body
        return body if "telegram" in body["degraded"] else None

    body = await wait_for(degraded, 20, message="Telegram outage not reported")
    assert body["status"] == "degraded"
    assert "Bad Gateway" in body["degraded"]["telegram"]
    # Alerts are still taken and stored; the card waits for Telegram.
    stored = await app.alert("crashloop-firing.json")
    assert stored["opened"]

    app.em.clear_faults()

    async def ready() -> bool:
        status, body = await get(app, "/readyz")
        return status == 200 and "telegram" not in body["degraded"]

    await wait_for(ready, 20, message="Telegram recovery not reported")
    await app.wait_card(lambda m: stored["opened"][0] in m["text"])


async def test_stuck_outbox_is_degraded(start_app: AppFactory) -> None:
    app = await start_app(outbox_stuck_after="1s")
    app.em.inject_fault("sendMessage", 502, count=10_000)
    await app.alert("crashloop-firing.json")

    async def degraded() -> dict[str, Any] | None:
        status, body = await get(app, "/readyz")
        assert status == 200, body
        return body if "outbox" in body["degraded"] else None

    body = await wait_for(degraded, 15, message="stuck outbox not reported")
    assert "oldest unsent Telegram write" in body["degraded"]["outbox"]
    app.em.clear_faults()
    await app.settled()
    status, body = await get(app, "/readyz")
    assert (status, body["degraded"]) == (200, {})


async def test_unready_only_when_alerts_cannot_be_stored(start_app: AppFactory) -> None:
    app = await start_app(database_busy_timeout="200ms")
    # Another process holds the write lock: nothing can be stored until it lets go.
    # Taken off the event loop: the app may be mid-transaction (start-up, delivery) and can
    # only finish it while the loop runs.
    async with write_lock_held(app.db_target):
        status, body = await get(app, "/readyz")
        assert status == 503
        assert body["status"] == "unavailable"
        # SQLite: "database is locked"; PostgreSQL: "canceling statement due to lock timeout"
        assert "lock" in body["error"]
        status, _ = await app.post("/alerts/alertmanager", fixture_bytes("crashloop-firing.json"))
        assert status == 503
    status, body = await get(app, "/readyz")
    assert (status, body["status"]) == (200, "ready")
