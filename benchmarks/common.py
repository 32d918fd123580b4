"""Shared set-up for benchmarks: emulator + the real app in one process, temp SQLite."""

from __future__ import annotations

import copy
import json
import statistics
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot.app import App
from bot.config import Settings
from sandbox.server import RunningEmulator, start_emulator

CHAT = -1001000000001
ALICE: dict[str, Any] = {"id": 111, "first_name": "Alice", "username": "alice"}
BOB: dict[str, Any] = {"id": 222, "first_name": "Bob", "username": "bob"}
SAMPLE = Path(__file__).resolve().parent.parent / "sandbox" / "samples" / "crashloop.json"


def payload_for_group(i: int) -> dict[str, Any]:
    """The sample crash-loop alert, moved to its own group (and deployment)."""
    data = json.loads(SAMPLE.read_text())
    data = copy.deepcopy(data)
    name = f"svc-{i:04d}"
    data["groupKey"] = f'{{}}/{{}}:{{alertname="KubePodCrashLooping", namespace="{name}"}}'
    data["groupLabels"] = {"alertname": "KubePodCrashLooping", "namespace": name}
    for alert in data["alerts"]:
        alert["labels"].update(namespace=name, deployment=name, pod=f"{name}-pod")
        alert["fingerprint"] = f"{i:016x}"
    data["commonLabels"].update(namespace=name, deployment=name)
    return data


@asynccontextmanager
async def running_app(**overrides: Any) -> AsyncIterator[tuple[App, RunningEmulator]]:
    emu = await start_emulator()
    emu.emulator.add_chat(CHAT, title="On-call", admins=[ALICE, BOB])
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            telegram_bot_token=SecretStr(emu.emulator.token), telegram_api_base=emu.base_url,
            telegram_chat_id=CHAT, approver_ids=[ALICE["id"], BOB["id"]], http_port=0,
            database_path=str(Path(tmp) / "bench.db"), **{"telegram_pacing": False, **overrides},
        )
        app = App(settings)
        await app.start()
        try:
            yield app, emu
        finally:
            await app.stop()
            await emu.close()


async def post(app: App, body: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{app.port}/alerts/alertmanager",
                             json=body) as resp:
            await resp.read()
            return resp.status


def report(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return (f"{name}: n={len(ms)} median={statistics.median(ms):.1f} ms "
            f"p90={ms[int(len(ms) * 0.9) - 1]:.1f} ms worst={ms[-1]:.1f} ms")
