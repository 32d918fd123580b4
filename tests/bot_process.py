"""`python -m bot run` as a real subprocess against the emulator, for kill and stop tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import aiohttp
from harness import ALICE, BOB, CHAT, fixture_bytes
from pg import change, database_env, is_pg, query

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

ROOT = Path(__file__).resolve().parent.parent


class ForkServer:
    """tests/bot_forkserver.py, started once: `python -m bot run` forked from a process that
    has imported the libraries already, for tests that start many replicas (each start costs
    a fraction of a second of CPU instead of seconds). Close it when done."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "bot_forkserver.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self._lock = threading.Lock()  # one request, one reply, at a time
        self._replies: list[Forked] = []
        self._replied = threading.Condition()
        self._children: dict[int, Forked] = {}
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,),
                                        daemon=True)
        self._reader.start()

    async def spawn(self, env: dict[str, str], cwd: Path, log: Path) -> Forked:
        """A new child (on a thread: the first waits for the server's imports)."""
        return await asyncio.to_thread(self._spawn, env, cwd, log)

    def _spawn(self, env: dict[str, str], cwd: Path, log: Path) -> Forked:
        assert self._proc.stdin is not None
        with self._lock:
            self._proc.stdin.write(
                (json.dumps({"env": env, "cwd": str(cwd), "log": str(log)}) + "\n").encode())
            self._proc.stdin.flush()
            with self._replied:
                if not self._replied.wait_for(lambda: self._replies or self._proc.poll(), 60):
                    raise TimeoutError("the fork server did not answer")
                if not self._replies:
                    raise RuntimeError(f"the fork server exited with {self._proc.returncode}")
                return self._replies.pop(0)

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            message = json.loads(line)
            with self._replied:
                if "pid" in message:  # always before that child's end
                    child = self._children[message["pid"]] = Forked(message["pid"])
                    self._replies.append(child)
                    self._replied.notify_all()
                elif (child := self._children.get(message["exited"])) is not None:
                    child.exited(message["returncode"])
        with self._replied:
            self._replied.notify_all()

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(30)
        self._reader.join(30)
        self._proc.stdout.close()


class Forked:
    """A child of the fork server: what the tests use of asyncio.subprocess.Process."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[int]]] = []
        self._lock = threading.Lock()

    def exited(self, returncode: int) -> None:
        """From the fork server's reader thread."""
        with self._lock:
            self.returncode = returncode
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that test's loop is closed
                loop.call_soon_threadsafe(_resolve, future, returncode)

    async def wait(self) -> int:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._waiters.append((asyncio.get_running_loop(), future))
        return await future

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None:
            raise ProcessLookupError(self.pid)
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def _resolve(future: asyncio.Future[int], returncode: int) -> None:
    if not future.done():
        future.set_result(returncode)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BotProcess:
    def __init__(self, emu: RunningEmulator, db: Path | str, port: int, workdir: Path,
                 forks: ForkServer | None = None) -> None:
        """`forks`: start each run from that fork server instead of a new interpreter."""
        self.emu, self.db, self.port, self.workdir = emu, db, port, workdir
        self.forks = forks
        self.proc: asyncio.subprocess.Process | Forked | None = None
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
        if self.forks is not None:
            self.proc = await self.forks.spawn(env, self.workdir, self.log)
        else:
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
