"""`python -m bot sandbox` as a new user runs it: banner, sample alert, card, clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from sandbox.emulator import wait_for
from sandbox.run import SAMPLES, SANDBOX_CHAT_ID

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_sandbox_command_end_to_end(tmp_path: Path) -> None:
    port, emu_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--port", str(port),
        "--emulator-port", str(emu_port), "--data-dir", str(tmp_path / "data"),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        banner = ""
        while "crashloop.json" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "sandbox exited before printing its banner"
            banner += line.decode()
        assert f"http://127.0.0.1:{emu_port}/" in banner
        async with aiohttp.ClientSession() as http:
            sample = (SAMPLES / "crashloop.json").read_bytes()
            async with http.post(f"http://127.0.0.1:{port}/alerts/alertmanager", data=sample,
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 200
            messages_url = f"http://127.0.0.1:{emu_port}/_control/chats/{SANDBOX_CHAT_ID}/messages"

            async def card() -> list[dict]:
                async with http.get(messages_url) as resp:
                    found = json.loads(await resp.text())
                return [m for m in found if "Awaiting approval" in m["text"]]

            (message,) = await wait_for(card, 30)
            assert "KubePodCrashLooping" in message["text"]
            async with http.get(f"http://127.0.0.1:{emu_port}/") as resp:
                assert resp.status == 200 and "opsgate" in (await resp.text()).lower()
        assert (tmp_path / "data" / "opsgate.db").exists()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
