"""PostgreSQL behind the same `Database` interface as SQLite, for several replicas.

The storage modules write SQL once, with `?` placeholders, and run it through the
connection they are given; here that connection is `PgConn`, which offers the part of
aiosqlite's connection they use and turns `?` into `$n`. What the two dialects spell
differently lives in the few storage functions that ask `dialect(conn)`, and in the
schema (migrations/postgresql/).

Writes keep SQLite's semantics across replicas: each write transaction first takes one
transaction-scoped advisory lock, so write transactions of every replica run one at a
time, as under SQLite's `BEGIN IMMEDIATE`; the read-then-write code in them needs no
per-query locking. A replica that stalls inside a transaction does not hold the others
for long: `idle_in_transaction_session_timeout` ends its session (and the lock with it),
and a writer waits at most `lock_timeout` (the busy timeout) before StorageUnavailable.
Reads use a small pool; each read sees the last committed state.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any, cast

import aiosqlite
import asyncpg

from storage.db import (
    _OWNER,
    BUSY_TIMEOUT_MS,
    Database,
    SchemaTooNew,
    _migrations,
    _split_sql,
    known_schema_version,
    redacted,
)

log = logging.getLogger(__name__)

# The key of the advisory lock every write transaction takes: one per database and schema
# (advisory locks are per database; two deployments in two schemas must not wait on each
# other).
LOCK_KEY_SQL = "SELECT hashtext('opsgate:' || current_database() || '/' || current_schema())"
# A session idle inside a transaction this long is ended by the server: a paused replica
# cannot hold the write lock beyond it (nor stall a failover: under the default lease).
# Transactions here last milliseconds.
IDLE_IN_TRANSACTION = "5s"
READ_POOL = 4

# Server errors that mean "cannot store right now", not "this statement is wrong".
_UNAVAILABLE_STATES = ("08", "53", "57", "58", "40", "55P03", "25006", "HV")


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """`?` placeholders (outside quoted text) as PostgreSQL's `$1, $2, ...`."""
    out: list[str] = []
    n = 0
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _params(args: Iterable[Any] | None) -> tuple[Any, ...]:
    """PostgreSQL's text cannot hold NUL, which SQLite stores: any untrusted field may carry
    one (a button's data, a label), so it is stored as U+FFFD, the same in every query."""
    return tuple(a.replace("\x00", "\ufffd") if isinstance(a, str) and "\x00" in a else a
                 for a in args or ())


_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW)\b|\bRETURNING\b", re.IGNORECASE)


class _Result:
    """What `conn.execute` gives: awaitable, an async context manager, and a cursor
    (fetchone, fetchall, rowcount), as aiosqlite's is."""

    def __init__(self, raw: asyncpg.Connection, sql: str, args: Sequence[Any]) -> None:
        self._raw, self._sql, self._args = raw, sql, args
        self._rows: list[asyncpg.Record] = []
        self._at = 0
        self.rowcount = -1
        self.lastrowid = None  # use RETURNING; PostgreSQL has no rowid

    async def _run(self) -> _Result:
        query = translate(self._sql)
        if _RETURNS_ROWS.search(query):
            self._rows = await self._raw.fetch(query, *self._args)
            self.rowcount = len(self._rows)
        else:
            status = await self._raw.execute(query, *self._args)
            last = status.rsplit(" ", 1)[-1] if status else ""
            self.rowcount = int(last) if last.isdigit() else -1
        return self

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> _Result:
        return await self._run()

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def fetchone(self) -> asyncpg.Record | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    async def fetchall(self) -> list[asyncpg.Record]:
        rows, self._at = self._rows[self._at:], len(self._rows)
        return rows

    async def close(self) -> None:
        return None


class PgConn:
    """The part of aiosqlite.Connection the storage modules use, on an asyncpg connection."""

    dialect = "postgresql"

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Result:
        return _Result(self.raw, sql, _params(parameters))

    async def execute_fetchall(self, sql: str,
                               parameters: Iterable[Any] | None = None) -> list[asyncpg.Record]:
        return cast(list[asyncpg.Record],
                    await self.raw.fetch(translate(sql), *_params(parameters)))

    async def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> None:
        await self.raw.executemany(translate(sql), [_params(args) for args in seq])

    async def commit(self) -> None:
        await self.raw.execute("COMMIT")

    async def rollback(self) -> None:
        if self.raw.is_in_transaction():
            await self.raw.execute("ROLLBACK")

    async def close(self) -> None:
        await self.raw.close()


def as_conn(conn: PgConn) -> aiosqlite.Connection:
    # The storage modules are typed against aiosqlite's connection; PgConn offers the part
    # of it they use.
    return cast(aiosqlite.Connection, conn)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        super().__init__(redacted(url), busy_timeout_ms)
        self.target = url
        self._pool: asyncpg.Pool | None = None
        self._pg_writer: PgConn | None = None
        self.lock_key = 0

    def _settings(self) -> dict[str, str]:
        return {"lock_timeout": f"{int(self.busy_timeout_ms)}ms",
                "idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION}

    async def open(self) -> None:
        raw = await asyncpg.connect(self.target, server_settings=self._settings())
        self._pg_writer = PgConn(raw)
        self.lock_key = int(await raw.fetchval(LOCK_KEY_SQL))
        self._writer = as_conn(self._pg_writer)
        _OWNER[self._writer] = self
        await self._migrate(self._writer)
        self._pool = await asyncpg.create_pool(self.target, min_size=1, max_size=READ_POOL,
                                               server_settings=self._settings())

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        pg = cast(PgConn, conn)
        async with pg.raw.transaction():
            # Replicas starting together: one migrates, the others wait and find it done.
            await pg.raw.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            await pg.raw.execute(
                "CREATE TABLE IF NOT EXISTS opsgate_schema (version BIGINT NOT NULL)")
            current = await pg.raw.fetchval("SELECT max(version) FROM opsgate_schema") or 0
            if current > known_schema_version():
                raise SchemaTooNew(self.path, current, known_schema_version())
            for version, name, sql in _migrations(self.dialect):
                if version <= current:
                    continue
                log.info("applying migration %s", name)
                for statement in _split_sql(sql):
                    await pg.raw.execute(statement)
                await pg.raw.execute("DELETE FROM opsgate_schema")
                await pg.raw.execute("INSERT INTO opsgate_schema (version) VALUES ($1)",
                                     version)

    async def schema_version(self) -> int:
        async with self.read() as conn:
            rows = await conn.execute_fetchall("SELECT max(version) FROM opsgate_schema")
        return int(next(iter(rows))[0] or 0)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._pg_writer is not None:
            await self._pg_writer.close()
            self._pg_writer = None
        self._writer = None

    async def _begin(self, conn: aiosqlite.Connection) -> None:
        pg = cast(PgConn, conn)
        if pg.raw.is_closed():
            # The server ended the session (a restart, or this process paused inside a
            # transaction past IDLE_IN_TRANSACTION): a new one, under the same PgConn.
            log.warning("database: the write connection was closed; connecting again")
            pg.raw = await asyncpg.connect(self.target, server_settings=self._settings())
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock(?)", (self.lock_key,))

    async def _rollback(self, conn: aiosqlite.Connection) -> None:
        try:
            await conn.rollback()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            log.exception("rollback failed")

    def _unavailable(self, exc: BaseException) -> bool:
        if isinstance(exc, asyncpg.PostgresError):
            state = getattr(exc, "sqlstate", "") or ""
            return state.startswith(_UNAVAILABLE_STATES)
        return isinstance(exc, OSError | asyncpg.InterfaceError)

    def _inline(self, conn: aiosqlite.Connection) -> AbstractContextManager[None]:
        return nullcontext()

    @asynccontextmanager
    async def read(self, *, slow: bool = False, inline: bool = False
                   ) -> AsyncIterator[aiosqlite.Connection]:
        # `slow` and `inline` are SQLite's ways around its one-statement-at-a-time
        # connections and their threads; here every read takes a connection of the pool.
        if self._pool is None:
            raise RuntimeError("Database.open() was not called")
        async with self._pool.acquire() as raw:
            yield as_conn(PgConn(raw))
