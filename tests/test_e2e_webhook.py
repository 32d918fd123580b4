"""Optional Telegram webhook mode: updates pushed to /telegram/webhook with a secret."""

from __future__ import annotations

import socket

import aiohttp
from harness import ALICE, AppFactory, Harness

from bot.models import DecisionState
from storage import repo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_mode_drives_the_same_buttons(start_app: AppFactory) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    h: Harness = await start_app(http_port=port, telegram_webhook_url=url,
                                 telegram_webhook_secret="s3cret-token")
    hook = h.em.webhook()
    assert hook is not None and hook["url"] == url and hook["secret_token"] == "s3cret-token"
    assert not h.em.calls("getUpdates")[1:]  # only the start-up drain, no long polling
    body = await h.alert("crashloop-firing.json")
    inc = body["opened"][0]
    card = await h.wait_card(lambda m: "Awaiting approval" in m["text"])
    await h.press(card["message_id"], "Approve", ALICE)
    await h.settled()
    async with h.db.read() as conn:
        assert (await repo.current_decision(conn, inc)).state is DecisionState.SUCCEEDED
    # A forged update without the secret is refused.
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"update_id": 1}) as resp:
            assert resp.status == 401
