"""Shared fixtures: a live emulator and factories for running apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from am_standin import StandIn, start_am_standin
from bot_process import BotProcess, free_port
from harness import (
    ALICE,
    BOB,
    CHAT,
    REDIS_TEST_URL,
    AppFactory,
    Harness,
    in_ci,
    redis_available,
    settings_for,
)
from hypothesis import settings
from pg import BACKENDS, Databases

from bot.app import App, utcnow
from sandbox.server import RunningEmulator, start_emulator
from storage.backends import database_for
from storage.db import Database

# Property tests drive the real app on two shared, noisy cores: no deadline, and in CI a
# fixed, derandomized set of examples so its time stays bounded and a failure reproduces.
settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None,
                          database=None, print_blob=True)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if in_ci() else "dev")


@pytest.fixture
async def am() -> AsyncIterator[StandIn]:
    """An Alertmanager stand-in (its silences API) on a free port."""
    standin = await start_am_standin()
    try:
        yield standin
    finally:
        await standin.close()


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    server = await start_emulator()
    server.emulator.add_chat(CHAT, title="On-call", admins=[ALICE, BOB])
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def start_app(emu: RunningEmulator, databases: Databases) -> AsyncIterator[AppFactory]:
    """Start the real app (Dispatcher polling the emulator + web server + workers)."""
    running: list[App] = []

    async def factory(db_name: str = "opsgate.db", poll: bool = True, chat: int = CHAT,
                      clock: Callable[[], datetime] = utcnow, **overrides: Any) -> Harness:
        target = await databases.target(db_name)
        app = App(settings_for(emu, target, telegram_chat_id=chat, **overrides), clock=clock)
        running.append(app)
        await app.start(poll=poll)
        return Harness(app, emu, chat)

    try:
        yield factory
    finally:
        for app in reversed(running):
            await app.stop()


@pytest.fixture
async def botproc(emu: RunningEmulator, tmp_path: Path,
                  databases: Databases) -> AsyncIterator[BotProcess]:
    """`python -m bot run` as a subprocess against the emulator (started by the test)."""
    proc = BotProcess(emu, await databases.target(), free_port(), tmp_path)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.returncode is None:
            await proc.kill()


@pytest.fixture
async def app(start_app: AppFactory) -> Harness:
    return await start_app()


@pytest.fixture(params=["memory", "redis"])
async def state_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The short-lived state backend: in process, and real Redis (DB 13, flushed)."""
    if request.param == "memory":
        yield ""
        return
    if not await redis_available():
        if in_ci():
            pytest.fail("Redis on 127.0.0.1:6379 is required in CI")
        pytest.skip("no Redis on 127.0.0.1:6379")
    client = aioredis.Redis.from_url(REDIS_TEST_URL)
    await client.flushdb()
    try:
        yield REDIS_TEST_URL
    finally:
        await client.flushdb()
        await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The system of record under test; `pg.sqlite_only` narrows a test to SQLite."""
    return str(request.param)


@pytest.fixture
async def databases(backend: str, tmp_path: Path) -> AsyncIterator[Databases]:
    async with AsyncExitStack() as stack:
        yield Databases(backend, tmp_path, stack)


@pytest.fixture
async def db_target(databases: Databases) -> str:
    """Where a test's database lives: a SQLite file in tmp_path, or a PostgreSQL URL with a
    schema of the test's own."""
    return await databases.target("unit.db")


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite file, for what only SQLite has (its connection thread, its errors)."""
    database = Database(tmp_path / "unit.db")
    await database.open()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def db(db_target: str) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    database = database_for(db_target)
    await database.open()
    try:
        yield database
    finally:
        await database.close()
