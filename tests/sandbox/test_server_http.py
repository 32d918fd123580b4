"""Raw HTTP: body encodings, envelopes, the control API, the page and webhooks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from sandbox_test_data import ALICE, GROUP, TOKEN

from sandbox.emulator import Emulator, wait_for
from sandbox.server import RunningEmulator, decode_param, start_emulator

KEYBOARD = {"inline_keyboard": [[{"text": "Approve", "callback_data": "a:1"}]]}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def api(running: RunningEmulator, method: str, token: str = TOKEN) -> str:
    return f"{running.base_url}/bot{token}/{method}"


async def test_form_encoded_like_aiogram(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    # aiogram sends form fields; nested objects are JSON strings, booleans "true"
    form = {
        "chat_id": str(GROUP),
        "text": "<b>42</b>",
        "parse_mode": "HTML",
        "reply_markup": json.dumps(KEYBOARD),
        "disable_notification": "true",
    }
    async with http.post(api(running, "sendMessage"), data=form) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["ok"] is True
    assert set(body) == {"ok", "result"}
    assert body["result"]["text"] == "42"
    assert body["result"]["reply_markup"] == KEYBOARD
    assert emu.calls("sendMessage")[0]["params"]["disable_notification"] is True


async def test_multipart_body(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(GROUP))
    form.add_field("text", "true")  # a text field stays a string
    form.add_field("dummy", b"bytes", filename="f.bin")  # forces multipart
    async with http.post(api(running, "sendMessage"), data=form) as resp:
        assert resp.status == 200
    assert emu.messages(GROUP)[0]["text"] == "true"


async def test_json_body_and_query_string(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    payload = {"chat_id": GROUP, "text": "hello", "reply_markup": KEYBOARD}
    async with http.post(api(running, "sendMessage"), json=payload) as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["message_id"] == 1
    params = {"chat_id": str(GROUP), "text": "123"}
    async with http.get(api(running, "sendMessage"), params=params) as resp:
        assert resp.status == 200
        assert (await resp.json())["result"]["text"] == "123"
    assert [m["text"] for m in emu.messages(GROUP)] == ["hello", "123"]


async def test_error_envelope_and_status(
    running: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    async with http.post(api(running, "sendMessage"), json={"chat_id": 1, "text": "x"}) as resp:
        assert resp.status == 400
        assert await resp.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: chat not found",
        }
    async with http.post(api(running, "getMe", token="1:wrong")) as resp:
        assert resp.status == 401
        assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    async with http.post(api(running, "noSuchMethod")) as resp:
        assert resp.status == 404
        assert (await resp.json())["description"] == "Not Found: method not found"


async def test_429_and_502_envelopes(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.inject_fault("getMe", 429, retry_after=3)
    emu.inject_fault("getMe", 502)
    async with http.post(api(running, "getMe")) as resp:
        assert resp.status == 429
        assert await resp.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        }
    async with http.post(api(running, "getMe")) as resp:
        assert resp.status == 502
        assert (await resp.json())["error_code"] == 502
    async with http.post(api(running, "getMe")) as resp:
        assert resp.status == 200


def test_decode_param() -> None:
    assert decode_param("chat_id", "-100123") == -100123
    assert decode_param("chat_id", "@channel") == "@channel"
    assert decode_param("reply_markup", '{"inline_keyboard": []}') == {"inline_keyboard": []}
    assert decode_param("allowed_updates", '["message"]') == ["message"]
    assert decode_param("show_alert", "true") is True
    assert decode_param("text", "true") == "true"
    assert decode_param("text", "[1]") == "[1]"
    assert decode_param("callback_query_id", "123") == "123"


# ---------------------------------------------------------------- control API


async def test_control_api_round_trip(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    base = f"{running.base_url}/_control"
    async with http.post(f"{base}/chats", json={"chat_id": -42, "title": "Ops"}) as resp:
        assert resp.status == 200
        assert (await resp.json())["title"] == "Ops"
    async with http.post(
        api(running, "sendMessage"), json={"chat_id": -42, "text": "card", "reply_markup": KEYBOARD}
    ) as resp:
        card = (await resp.json())["result"]
    async with http.post(
        f"{base}/press",
        json={
            "chat_id": -42,
            "message_id": card["message_id"],
            "callback_data": "a:1",
            "user": ALICE,
        },
    ) as resp:
        query_id = (await resp.json())["query_id"]
    async with http.get(f"{base}/callbacks") as resp:
        assert (await resp.json())["unanswered"] == [query_id]
    async with http.get(f"{base}/callbacks/{query_id}") as resp:
        assert await resp.json() is None
    await emu.call("answerCallbackQuery", {"callback_query_id": query_id, "text": "Approved"})
    async with http.get(f"{base}/callbacks/{query_id}") as resp:
        assert await resp.json() == {"text": "Approved"}
    async with http.post(f"{base}/send", json={"chat_id": -42, "user": ALICE, "text": "/help"}):
        pass
    async with http.get(f"{base}/chats/-42/messages") as resp:
        messages = await resp.json()
    assert [m["text"] for m in messages] == ["card", "/help"]
    assert messages[0]["html"] == "card"
    async with http.get(f"{base}/calls", params={"method": "sendMessage"}) as resp:
        assert [c["method"] for c in await resp.json()] == ["sendMessage"]
    async with http.post(f"{base}/faults", json={"method": "getMe", "error_code": 500}):
        pass
    async with http.post(api(running, "getMe")) as resp:
        assert resp.status == 500
    await_faults = {"method": "getMe", "error_code": 502, "count": 3}
    async with http.post(f"{base}/faults", json=await_faults):
        pass
    async with http.delete(f"{base}/faults") as resp:
        assert await resp.json() == {"cleared": 3}
    async with http.post(api(running, "getMe")) as resp:
        assert resp.status == 200
    async with http.post(f"{base}/settings", json={"rate_limits": True}) as resp:
        assert (await resp.json())["rate_limits"] is True
    assert emu.rate_limits is True
    async with http.post(f"{base}/settings", json={"rate_limits": True, "flood_speed": 20}):
        pass
    assert emu.flood_limits.group_window == pytest.approx(3.0)
    async with http.post(f"{base}/reset") as resp:
        assert resp.status == 200
    assert emu.chats() == []


async def test_control_api_errors_and_topics(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    base = f"{running.base_url}/_control"
    bad_press = {"chat_id": GROUP, "message_id": 99, "callback_data": "x", "user": ALICE}
    async with http.post(f"{base}/press", json=bad_press) as resp:
        assert resp.status == 400
        assert "not found" in (await resp.json())["error"]
    async with http.get(f"{base}/chats/-777/messages") as resp:
        assert resp.status == 404
    emu.add_chat(-55, type="group")
    async with http.post(f"{base}/migrate", json={"old_id": -55, "new_id": -10055}) as resp:
        assert (await resp.json())["id"] == -10055
    emu.add_chat(-66, is_forum=True)
    thread = emu.add_topic(-66, "ops")
    async with http.get(f"{base}/topics/-66") as resp:
        assert await resp.json() == [
            {"id": thread, "name": "ops", "closed": False, "icon_color": 0x6FB9F0}
        ]


async def test_browser_page(running: RunningEmulator, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{running.base_url}/") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/html"
        page = await resp.text()
    assert "/_control/" in page and "press" in page
    assert "<script" in page
    # no external assets: the only linked file is the favicon, served here
    assert 'src="http' not in page
    assert re.findall(r"<link[^>]*>", page) == [
        '<link rel="icon" href="/favicon.svg" type="image/svg+xml">']


# ----------------------------------------------------------------- lifecycle


async def test_start_emulator_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await start_emulator(host="0.0.0.0")
    server = await start_emulator(port=0)
    try:
        assert server.port > 0
        assert server.base_url == f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_close_releases_a_pending_long_poll(http: aiohttp.ClientSession) -> None:
    server = await start_emulator()
    poll = asyncio.create_task(http.get(api(server, "getUpdates") + "?timeout=30"))
    await wait_for(lambda: server.emulator.calls("getUpdates"))
    await asyncio.wait_for(server.close(), 5)
    resp = await asyncio.wait_for(poll, 5)
    assert (await resp.json())["result"] == []
    resp.release()


async def test_wait_for_times_out_and_accepts_async_predicates(emu: Emulator) -> None:
    with pytest.raises(TimeoutError):
        await wait_for(lambda: emu.messages(GROUP), timeout=0.2)

    async def has_message() -> bool:
        return bool(emu.messages(GROUP))

    emu.user_sends(GROUP, ALICE, "hi")
    assert await wait_for(has_message, timeout=1)
    # a LookupError means "not yet"
    with pytest.raises(TimeoutError):
        await wait_for(lambda: emu.message(GROUP, 99), timeout=0.1)


# ------------------------------------------------------------------ webhooks


async def test_webhook_delivery_with_secret(running: RunningEmulator, emu: Emulator) -> None:
    received: list[tuple[dict, str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/tg", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await emu.call(
            "setWebhook", {"url": f"http://127.0.0.1:{port}/tg", "secret_token": "abc_-1"}
        )
        emu.user_sends(GROUP, ALICE, "/status")
        await wait_for(lambda: received)
        update, secret = received[0]
        assert secret == "abc_-1"
        assert update["message"]["text"] == "/status"
        await wait_for(lambda: emu.pending_updates() == [])
        info = await emu.call("getWebhookInfo", {})
        assert info["pending_update_count"] == 0
    finally:
        await emu.call("deleteWebhook", {})
        await runner.cleanup()


async def test_webhook_must_be_loopback(emu: Emulator) -> None:
    from sandbox.emulator import ApiError

    with pytest.raises(ApiError) as info:
        await emu.call("setWebhook", {"url": "https://example.com/hook"})
    assert info.value.error_code == 400
    assert emu.webhook() is None


async def test_malformed_parameters_are_400_not_500(
    running: RunningEmulator, http: aiohttp.ClientSession
) -> None:
    form = {"chat_id": str(GROUP), "text": "x", "reply_parameters": "{not json"}
    async with http.post(api(running, "sendMessage"), data=form) as resp:
        assert resp.status == 400
        assert (await resp.json())["description"].startswith("Bad Request: ")


async def test_reset_keeps_a_pending_long_poll_alive(
    running: RunningEmulator, emu: Emulator, http: aiohttp.ClientSession
) -> None:
    poll = asyncio.create_task(http.get(api(running, "getUpdates") + "?timeout=10"))
    await wait_for(lambda: emu.calls("getUpdates"))
    emu.reset()
    emu.add_chat(GROUP)
    emu.user_sends(GROUP, ALICE, "after reset")
    resp = await asyncio.wait_for(poll, 5)
    body = await resp.json()
    resp.release()
    assert body["ok"] is True
    assert [u["message"]["text"] for u in body["result"]] == ["after reset"]


async def test_standalone_module_serves(http: aiohttp.ClientSession) -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        base = line.split()[3]
        assert base.startswith("http://127.0.0.1:")
        async with http.get(f"{base}/bot123456:SANDBOX/getMe") as resp:
            assert (await resp.json())["result"]["username"] == "opsgate_sandbox_bot"
    finally:
        proc.terminate()
        await proc.communicate()  # read stdout to its end, or its transport outlives the test
