"""`python -m bot sandbox` as a real subprocess on free loopback ports, as a new user runs it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SandboxProcess:
    banner: str
    port: int
    emulator_port: int
    data_dir: Path
    log: Path  # the sandbox's stderr (its log lines)

    @property
    def page_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts/alertmanager"

    @property
    def webhook_token(self) -> str:
        """The bearer token the banner's curl command carries."""
        found = re.search(r"Authorization: Bearer ([^']+)'", self.banner)
        assert found, f"no bearer token in the banner:\n{self.banner}"
        return found.group(1)


@asynccontextmanager
async def sandbox_process(tmp_path: Path) -> AsyncIterator[SandboxProcess]:
    """Start the sandbox, wait for its banner, and stop it with SIGTERM (exit code 0)."""
    port, emu_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    # These tests fire and press faster than a group's 20 writes a minute; pacing has its
    # own tests, here it would only make them wait.
    env["TELEGRAM_PACING"] = "false"
    data_dir, log = tmp_path / "data", tmp_path / "sandbox.log"
    with log.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "sandbox", "--port", str(port),
            "--emulator-port", str(emu_port), "--data-dir", str(data_dir),
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=log_file,
        )
    assert proc.stdout is not None
    drain: asyncio.Task[bytes] | None = None
    try:
        banner = ""
        while "crashloop-resolved.json" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"sandbox exited before printing its banner:\n{log.read_text()}"
            banner += line.decode()
        # keep the pipe drained so the sandbox never blocks on a full stdout
        drain = asyncio.create_task(proc.stdout.read())
        yield SandboxProcess(banner, port, emu_port, data_dir, log)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0, log.read_text()
        if drain is not None:
            await drain
