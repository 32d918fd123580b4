"""A PostgreSQL schema of its own for each test, on the server at 127.0.0.1:5432 (trust
auth, database `test`). Unreachable: the test skips, except under CI=true, where it fails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

SERVER = os.environ.get("OPSGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


async def _server() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(SERVER, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL at {SERVER} is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL at {SERVER}")


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A new, empty schema; yields the DATABASE_URL that uses it. Dropped afterwards."""
    name = f"t_{secrets.token_hex(6)}"
    # asyncpg passes unknown query parameters on as server settings.
    url = f"{SERVER}?search_path={name}&application_name=opsgate-{name}"
    admin = await _server()
    try:
        await admin.execute(f"CREATE SCHEMA {name}")
        yield url
    finally:
        await _close_kept(url)
        # Replicas a test started may still hold connections: end them first.
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            f"opsgate-{name}")
        await admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await admin.close()


def is_pg(target: str | Path) -> bool:
    return str(target).startswith("postgresql://")


def sqlite_only(reason: str) -> pytest.MarkDecorator:
    """For a test about what only SQLite has (its file, its lock, its thread): run it on the
    SQLite backend alone. `reason` says what."""
    assert reason
    return pytest.mark.parametrize("backend", ["sqlite"])


class Databases:
    """A test's databases by name: a file in tmp_path on SQLite, a schema of its own on
    PostgreSQL; the same name is the same database for the whole test (a restart)."""

    def __init__(self, backend: str, tmp_path: Path, stack: AsyncExitStack) -> None:
        self.backend, self.tmp_path, self._stack = backend, tmp_path, stack
        self._urls: dict[str, str] = {}

    async def target(self, name: str = "opsgate.db") -> str:
        if self.backend == "sqlite":
            return str(self.tmp_path / name)
        if name not in self._urls:
            self._urls[name] = await self._stack.enter_async_context(pg_schema())
        return self._urls[name]


def query(target: str | Path, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on a test's database from outside the app, as an operator would."""
    if is_pg(target):
        return rows(str(target), sql, args)
    conn = sqlite3.connect(target)
    try:
        return conn.execute(sql, tuple(args)).fetchall()
    finally:
        conn.close()


def change(target: str | Path, sql: str, args: Sequence[Any] = ()) -> None:
    """One statement committed on a test's database from outside the app."""
    if is_pg(target):
        rows(str(target), sql, args, fetch=False)
        return
    conn = sqlite3.connect(target)
    try:
        conn.execute(sql, tuple(args))
        conn.commit()
    finally:
        conn.close()


@asynccontextmanager
async def write_lock_held(target: str | Path) -> AsyncIterator[None]:
    """Another process holding the database's write lock: SQLite's file lock, or on
    PostgreSQL the advisory lock every write transaction of opsgate takes."""
    if is_pg(target):
        from storage.postgres import LOCK_KEY_SQL

        conn = await asyncpg.connect(str(target))
        try:
            key = await conn.fetchval(LOCK_KEY_SQL)
            await conn.execute("SELECT pg_advisory_lock($1)", key)
            yield
        finally:
            await conn.close()  # the lock goes with the session
        return
    # Taken off the event loop: blocking the loop would keep the app from finishing a
    # transaction it has begun, and the lock would wait for it.
    locker = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def database_env(target: str) -> dict[str, str]:
    """The setting that points a `python -m bot` subprocess at a test's database."""
    if target.startswith("postgresql://"):
        return {"DATABASE_URL": target}
    return {"DATABASE_PATH": target}


def rows(url: str, sql: str, args: Sequence[Any] = (), *,
         fetch: bool = True) -> list[tuple[Any, ...]]:
    """A query from synchronous test code (the event loop's thread may be busy awaiting):
    run on the queries' own loop and thread, on the connection kept for `url`."""
    return asyncio.run_coroutine_threadsafe(_run(url, sql, tuple(args), fetch),
                                            _queries_loop()).result()


async def rows_async(url: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """rows() from a coroutine, the caller's loop free meanwhile."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(
        _run(url, sql, tuple(args), True), _queries_loop()))


# rows() is polled many times a second by some tests: one connection per database, kept on
# one loop of its own (a thread, a loop and a connection per query cost milliseconds each).
_loop: asyncio.AbstractEventLoop | None = None
_loop_started = threading.Lock()
_kept: dict[str, asyncpg.Connection] = {}
_kept_locks: dict[str, asyncio.Lock] = {}  # one statement at a time on a connection


def _queries_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_started:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="pg-rows", daemon=True).start()
        return _loop


async def _run(url: str, sql: str, args: tuple[Any, ...],
               fetch: bool) -> list[tuple[Any, ...]]:
    async with _kept_locks.setdefault(url, asyncio.Lock()):
        conn = _kept.get(url)
        if conn is None or conn.is_closed():
            # No statement cache: a test may change the schema between two queries.
            conn = _kept[url] = await asyncpg.connect(url, statement_cache_size=0)
        if fetch:
            return [tuple(r) for r in await conn.fetch(_dollars(sql), *args)]
        await conn.execute(_dollars(sql), *args)
        return []


async def _forget(url: str) -> None:
    async with _kept_locks.setdefault(url, asyncio.Lock()):
        conn = _kept.pop(url, None)
        _kept_locks.pop(url, None)
        if conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.close(timeout=5)


async def _close_kept(url: str) -> None:
    """Close the connection rows() kept for `url` (its schema is going)."""
    if _loop is not None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_forget(url), _loop))


def _dollars(sql: str) -> str:
    from storage.postgres import translate

    return translate(sql)
