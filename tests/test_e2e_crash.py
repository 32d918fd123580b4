"""`python -m bot run` as a real subprocess, killed with SIGKILL at bad moments."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from harness import ALICE, BOB, CHAT, fixture_bytes

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotProcess:
    def __init__(self, emu: RunningEmulator, db: Path, port: int, workdir: Path) -> None:
        self.emu, self.db, self.port, self.workdir = emu, db, port, workdir
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": self.emu.emulator.token,
            "TELEGRAM_API_BASE": self.emu.base_url,
            "TELEGRAM_CHAT_ID": str(CHAT),
            "APPROVER_IDS": f"{ALICE['id']},{BOB['id']}",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            "DATABASE_PATH": str(self.db),
            "REDIS_URL": "",
            "PYTHONPATH": str(ROOT),
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=self.workdir, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"bot exited with {self.proc.returncode}")
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.get(self.url + "/healthz") as resp:
                        return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(healthy, 30, message="bot did not become healthy")

    async def post(self, name: str) -> int:
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + "/alerts/alertmanager", data=fixture_bytes(name),
                                 headers={"Content-Type": "application/json"}) as resp:
                return resp.status

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 20)

    def outbox_pending(self) -> int:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
        finally:
            conn.close()


@pytest.fixture
async def botproc(emu: RunningEmulator, tmp_path: Path) -> AsyncIterator[BotProcess]:
    proc = BotProcess(emu, tmp_path / "opsgate.db", _free_port(), tmp_path)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.returncode is None:
            await proc.kill()


def _cards(emu: RunningEmulator) -> list[dict]:
    return [m for m in emu.emulator.messages(CHAT) if "reply_to_message" not in m]


async def test_sigkill_after_2xx_before_delivery_still_delivers_once(
    botproc: BotProcess, emu: RunningEmulator
) -> None:
    await botproc.start()
    # Telegram is "down" for this process: nothing can be delivered before the kill.
    emu.emulator.inject_fault("sendMessage", 502, count=10_000)
    assert await botproc.post("crashloop-firing.json") == 200
    await botproc.kill()
    assert _cards(emu) == []

    emu.emulator.clear_faults()
    await botproc.start()
    await wait_for(lambda: _cards(emu) and botproc.outbox_pending() == 0, 30)
    ok_sends = [c for c in emu.emulator.calls("sendMessage") if c["ok"]]
    assert len(_cards(emu)) == 1
    assert len(ok_sends) == 1
    assert await botproc.terminate() == 0


async def test_sigkill_between_firing_and_resolving(
    botproc: BotProcess, emu: RunningEmulator
) -> None:
    await botproc.start()
    assert await botproc.post("single-firing.json") == 200
    await wait_for(lambda: _cards(emu) and botproc.outbox_pending() == 0, 30)
    (card,) = _cards(emu)
    await botproc.kill()

    await botproc.start()
    assert await botproc.post("single-resolved.json") == 200
    await wait_for(
        lambda: "RESOLVED" in emu.emulator.message(CHAT, card["message_id"])["text"].upper()
        and botproc.outbox_pending() == 0,
        30,
    )
    assert len(_cards(emu)) == 1
    assert await botproc.terminate() == 0
