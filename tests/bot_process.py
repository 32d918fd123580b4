"""`python -m bot run` as a real subprocess against the emulator, for kill and stop tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
from harness import ALICE, BOB, CHAT, fixture_bytes
from pg import change, database_env, is_pg, query

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotProcess:
    def __init__(self, emu: RunningEmulator, db: Path | str, port: int, workdir: Path) -> None:
        self.emu, self.db, self.port, self.workdir = emu, db, port, workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.log = workdir / "bot.log"  # stderr of every run, appended

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait: bool = True, **env_extra: str) -> None:
        """Start one run; `env_extra` adds settings (e.g. OPSGATE_FAULT) for this run only."""
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": self.emu.emulator.token,
            "TELEGRAM_API_BASE": self.emu.base_url,
            "TELEGRAM_CHAT_ID": str(CHAT),
            "APPROVER_IDS": f"{ALICE['id']},{BOB['id']}",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.port),
            **database_env(str(self.db)),
            # On PostgreSQL a restart after a kill waits for the dead process's lease to run
            # out (on SQLite it is taken at once): short, so a restart is as quick as there.
            **({"LEADER_LEASE": "3s"} if is_pg(self.db) else {}),
            "REDIS_URL": "",
            "PYTHONPATH": str(ROOT),
            # Pacing has its own tests; a crash test at one write a second per chat would
            # only wait (and its timeouts are for crashes, not for Telegram's limits).
            "TELEGRAM_PACING": "false",
        }
        env.pop("OPSGATE_FAULT", None)  # armed only where a run asks for it
        env.update(env_extra)
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self.workdir, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )
        if wait:
            await wait_for(self.healthy, 30, message="bot did not become healthy")

    async def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"bot exited with {self.proc.returncode}:\n{self.log_text()}")
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(self.url + "/healthz") as resp:
                    return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def role(self) -> str | None:
        """The role /readyz reports (leader, standby), or None while it does not answer."""
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(self.url + "/readyz",
                                    timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    return str((await resp.json()).get("role"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def post(self, name: str) -> int:
        async with aiohttp.ClientSession() as http:
            async with http.post(self.url + "/alerts/alertmanager", data=fixture_bytes(name),
                                 headers={"Content-Type": "application/json"}) as resp:
                return resp.status

    async def kill(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def exited(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.exited()

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A query on the database, from outside the process (as an operator would)."""
        return query(self.db, sql, args)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """A change to the database while the process is down (e.g. its heartbeat)."""
        change(self.db, sql, args)

    def outbox_pending(self) -> int:
        return self.rows(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')")[0][0]
