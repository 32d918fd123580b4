"""One `python -m bot run` per SQLite file: a second process on the same file refuses to
start, in one line, before it touches the database or Telegram (so the first one's writes
in flight stay its own), and a first process killed with SIGKILL leaves nothing that stops
a restart."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from bot_process import BotProcess, free_port
from harness import CHAT
from pg import sqlite_only

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator
from storage import sqlite_lock

ROOT = Path(__file__).resolve().parent.parent
HOLDER = """
import sys, time
from storage import sqlite_lock
sqlite_lock.acquire(sys.argv[1])
print("held", flush=True)
time.sleep(600)
"""


def _cards(emu: RunningEmulator) -> list[dict]:
    return [m for m in emu.emulator.messages(CHAT) if "reply_to_message" not in m]


def _refusal(log: str) -> str:
    lines = [line for line in log.splitlines() if line.strip()]
    assert len(lines) == 1, log
    (line,) = lines
    assert "Traceback" not in line
    assert line.startswith("opsgate: cannot start: DATABASE_PATH:"), line
    return line


@sqlite_only("the lock on a SQLite file")
async def test_a_second_process_on_the_file_refuses_and_leaves_the_first_alone(
    botproc: BotProcess, emu: RunningEmulator, tmp_path: Path
) -> None:
    await botproc.start()
    # The first process's card is on the wire: its outbox row is 'sending'.
    emu.emulator.hold("sendMessage")
    assert await botproc.post("crashloop-firing.json") == 200
    await wait_for(lambda: emu.emulator.held("sendMessage") == 1, 30)
    assert botproc.rows("SELECT state FROM outbox WHERE kind = 'card'") == [("sending",)]
    starts = len(emu.emulator.calls("getMe"))  # a start-up's first call to Telegram

    (tmp_path / "second").mkdir()
    second = BotProcess(emu, botproc.db, free_port(), tmp_path / "second")
    await second.start(wait=False)
    try:
        assert await second.exited(timeout=60) == 1  # a start-up imports aiogram: seconds of CPU
    finally:
        await second.kill()
    line = _refusal(second.log_text())
    assert str(botproc.db) in line and "another opsgate process" in line
    assert f"pid {botproc.proc.pid if botproc.proc else ''} " in line
    assert "stop the other process" in line and "DATABASE_URL=postgresql://" in line
    # It stopped before Telegram and before start-up's take-over of rows left 'sending'.
    assert len(emu.emulator.calls("getMe")) == starts
    assert botproc.rows("SELECT state FROM outbox WHERE kind = 'card'") == [("sending",)]

    emu.emulator.release("sendMessage")
    await wait_for(lambda: botproc.outbox_pending() == 0, 30)
    assert len(_cards(emu)) == 1
    assert len(emu.emulator.calls("sendMessage")) == 1
    assert await botproc.healthy()
    assert await botproc.terminate() == 0


@sqlite_only("the lock on a SQLite file")
async def test_a_restart_after_sigkill_starts_at_once(
    botproc: BotProcess, emu: RunningEmulator
) -> None:
    await botproc.start()
    assert await botproc.post("single-firing.json") == 200
    await wait_for(lambda: _cards(emu) and botproc.outbox_pending() == 0, 30)
    await botproc.kill()
    assert sqlite_lock.lock_path(botproc.db).exists()  # left behind, and harmless

    await botproc.start()  # fails the test if this run exits (it would refuse in one line)
    assert await botproc.post("single-resolved.json") == 200
    await wait_for(lambda: "RESOLVED" in _cards(emu)[0]["text"].upper()
                   and botproc.outbox_pending() == 0, 30)
    assert len(_cards(emu)) == 1
    assert await botproc.terminate() == 0
    # A clean stop lets go as well: this process can take the lock now.
    sqlite_lock.acquire(botproc.db).release()


async def _holder(database: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, str(database), cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"held\n"
    return proc


async def test_the_lock_is_the_processs_and_dies_with_it(tmp_path: Path) -> None:
    database = tmp_path / "data" / "opsgate.db"
    holder = await _holder(database)
    try:
        with pytest.raises(sqlite_lock.InUse, match=f"pid {holder.pid} on "):
            sqlite_lock.acquire(database)
        holder.kill()
        await holder.wait()
        first = sqlite_lock.acquire(database)  # at once: nothing to wait out or clean up
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
    # Apps in one process (tests run several on one file) share it; the last one out
    # lets go.
    second = sqlite_lock.acquire(database)
    first.release()
    first.release()  # twice is once
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from storage import sqlite_lock\n"
        "try:\n sqlite_lock.acquire(sys.argv[1])\nexcept sqlite_lock.InUse:\n sys.exit(3)",
        str(database), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert await asyncio.wait_for(other.wait(), 30) == 3
    second.release()
    again = await _holder(database)  # free once the last user released it
    again.kill()
    await again.wait()
