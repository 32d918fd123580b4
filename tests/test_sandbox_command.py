"""`python -m bot sandbox` as a new user runs it: banner, sample alert, card, clean stop."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from sandbox_process import sandbox_process

from sandbox.emulator import wait_for
from sandbox.run import SAMPLES, SANDBOX_CHAT_ID


async def test_sandbox_command_end_to_end(tmp_path: Path) -> None:
    async with sandbox_process(tmp_path) as sandbox, aiohttp.ClientSession() as http:
        assert sandbox.page_url in sandbox.banner
        sample = (SAMPLES / "crashloop.json").read_bytes()
        json_body = {"Content-Type": "application/json"}
        # the webhook is guarded as in production: the banner's curl carries the token
        async with http.post(sandbox.webhook_url, data=sample, headers=json_body) as resp:
            assert resp.status == 401
        async with http.post(sandbox.webhook_url, data=sample, headers={
                **json_body, "Authorization": f"Bearer {sandbox.webhook_token}"}) as resp:
            assert resp.status == 200
        messages_url = f"{sandbox.page_url}_control/chats/{SANDBOX_CHAT_ID}/messages"

        async def card() -> list[dict]:
            async with http.get(messages_url) as resp:
                found = json.loads(await resp.text())
            return [m for m in found if "Awaiting approval" in m["text"]]

        (message,) = await wait_for(card, 30)
        assert "KubePodCrashLooping" in message["text"]
        async with http.get(sandbox.page_url) as resp:
            assert resp.status == 200 and "opsgate" in (await resp.text()).lower()
    assert (tmp_path / "data" / "opsgate.db").exists()
