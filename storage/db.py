"""SQLite connection management: one writer under an async lock, WAL, migrations.

Every write happens in `async with db.write() as conn:` — an explicit `BEGIN
IMMEDIATE` transaction, committed on exit and rolled back on error, so concurrent
coroutines never interleave inside one transaction and a failed request leaves
nothing half-written. One process runs the app on a file (`run` holds its lock:
storage/sqlite_lock.py), so its writers take turns here, not in SQLite; busy_timeout
is for the commands that open the file while it runs (`playbooks import` and `kb
reindex` write, `backup` reads), which wait for its write lock, and it for theirs,
that long at most. Delivery's short writes (claim a row, mark it sent), storing an
incoming update, and every write made while someone is waiting (`people_waiting()`:
a press, a command) go before every ordinary writer still waiting, so a queue of
webhooks never starves delivery or holds up a press.

Inside a write transaction the writer's statements run on the event loop's thread, not
on aiosqlite's: the transaction holds SQLite's write lock, so no statement waits for
another process, and a statement costs microseconds where a thread round trip (one per
execute, fetch and cursor close) costs tens. BEGIN runs there too when SQLite's write lock
is free (it is, unless another process holds it: a backup, an operator's sqlite3); only a
BEGIN that has to wait for it (busy_timeout), COMMIT and ROLLBACK, which can write to disk,
still go to the thread.

A write that creates work for a worker marks it (`mark(conn, Wake.X)`); the
mark wakes the worker after COMMIT, never before, so it finds the rows. Marks
are hints only: every worker also polls, for rows committed by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


class StorageUnavailable(Exception):
    """The database cannot be written right now (disk full, locked, read-only...)."""


class Wake(StrEnum):
    """The worker a committed row concerns."""

    DELIVERY = "delivery"  # outbox rows to send
    ANALYSIS = "analysis"  # a decision waits for analysis
    EXECUTION = "execution"  # a decision was approved
    INBOX = "inbox"  # Telegram updates to handle


# The Database whose write transaction a connection belongs to (for mark()).
_OWNER: weakref.WeakKeyDictionary[aiosqlite.Connection, Database] = weakref.WeakKeyDictionary()


def mark(conn: aiosqlite.Connection, wake: Wake) -> None:
    """Wake `wake`'s worker once the current write transaction commits."""
    db = _OWNER.get(conn)
    if db is not None:
        db._marked.add(wake)


class CommitWith:
    """Work that must commit together with the next write transaction of a context (see
    `committing_with`); `committed` tells afterwards whether it did."""

    def __init__(self, work: Callable[[aiosqlite.Connection], Awaitable[object]]) -> None:
        self.work = work
        self.committed = False


_ALONG: ContextVar[CommitWith | None] = ContextVar("commit_with", default=None)


@contextmanager
def committing_with(along: CommitWith) -> Iterator[None]:
    """Within this context the first write transaction that commits also does `along.work`:
    the inbox marks an update handled in the same commit as its handler's first change, so
    a crash can never leave the change made and the update waiting to be handled again."""
    token = _ALONG.set(along)
    try:
        yield
    finally:
        _ALONG.reset(token)


class _Writer(aiosqlite.Connection):
    """The write connection: while `inline` is set (inside a write transaction, under the
    write lock, so nothing else is queued to its thread) every call runs on the caller's
    thread instead of a round trip to the connection's own thread."""

    inline = False

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.inline and self._connection is not None:
            return fn(*args, **kwargs)
        return await super()._execute(fn, *args, **kwargs)

    def begin_at_once(self, busy_timeout_ms: int) -> bool:
        """BEGIN IMMEDIATE on the caller's thread if SQLite's write lock is free; False, with
        nothing begun, when another process holds it (waiting is for the connection's own
        thread: the loop must not). Called with the connection's thread idle."""
        raw = self._connection
        if raw is None:
            return False
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        return True


# Set while a press or a command is handled (and while an approved action runs): its
# transactions go before the webhooks waiting, and every outbox row it queues goes in the
# people lane.
_PEOPLE_WAITING: ContextVar[bool] = ContextVar("opsgate_people_waiting", default=False)


@contextmanager
def people_waiting() -> Iterator[None]:
    token = _PEOPLE_WAITING.set(True)
    try:
        yield
    finally:
        _PEOPLE_WAITING.reset(token)


def someone_waiting() -> bool:
    return _PEOPLE_WAITING.get()


class _HeldWakes:
    """The wake-ups of commits made within `wakes_held`, set when it ends."""

    def __init__(self) -> None:
        self.events: list[asyncio.Event] = []
        self.open = True

    def drop(self) -> None:
        """Wake nobody for what was committed so far (its rows were handed over)."""
        self.events.clear()


_HELD: ContextVar[_HeldWakes | None] = ContextVar("opsgate_wakes_held", default=None)


@contextmanager
def wakes_held() -> Iterator[_HeldWakes]:
    """The workers the commits made within this context concern wake when it ends, not at
    each commit: a press is answered before the delivery its commit woke (rendering the
    card again) takes the loop; on Python 3.11 the answer's body goes out a loop turn after
    the call, behind whatever is ready by then."""
    held = _HeldWakes()
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
        held.open = False  # a task started within, committing later, wakes at once
        for event in held.events:
            event.set()


class _WriteTurns:
    """One writer at a time, first come first served, except that urgent writers waiting
    go before ordinary ones waiting."""

    def __init__(self) -> None:
        self._busy = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    async def acquire(self, urgent: bool) -> None:
        if not self._busy and not self._urgent and not self._ordinary:
            self._busy = True
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        (self._urgent if urgent else self._ordinary).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release()  # handed the turn as we were cancelled: pass it on
            else:
                # A release may have dropped it already, passing over it.
                with contextlib.suppress(ValueError):
                    (self._urgent if urgent else self._ordinary).remove(turn)
            raise

    @property
    def waiting(self) -> int:
        return sum(not t.done() for t in (*self._urgent, *self._ordinary))

    def release(self) -> None:
        for waiting in (self._urgent, self._ordinary):
            while waiting:
                turn = waiting.popleft()
                if not turn.done():
                    turn.set_result(None)  # still busy: the turn passes straight on
                    return
        self._busy = False


class SchemaTooNew(Exception):
    """The database was written by a newer opsgate; running older code on it could lose data."""

    FIX = "run the opsgate version that wrote it, or restore a backup taken before the upgrade"

    def __init__(self, path: str | Path, version: int, known: int) -> None:
        super().__init__(f"{path} has schema {version}, this opsgate knows up to {known}")


def known_schema_version() -> int:
    return max(version for version, _, _ in _migrations())


def _migrations(dialect: str = "sqlite") -> list[tuple[int, str, str]]:
    """(version, file name, SQL) in order. migrations/NNN_*.sql are SQLite's; a dialect's
    folder (migrations/postgresql/) holds its baseline, which creates the schema as of its
    number, and the later versions whose SQL differs; the others are shared."""
    shared = _sql_files(resources.files("storage").joinpath("migrations"))
    if dialect == "sqlite":
        return shared
    own = {v: (v, f"{dialect}/{n}", sql) for v, n, sql in
           _sql_files(resources.files("storage").joinpath("migrations", dialect))}
    baseline = min(own)
    found = [own[baseline]]
    for version, name, sql in shared:
        if version > baseline:
            found.append(own.get(version, (version, name, sql)))
    return found


def _sql_files(folder: Any) -> list[tuple[int, str, str]]:
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append((int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def dialect(conn: object) -> str:
    """The SQL dialect of a connection the storage modules were given."""
    return getattr(conn, "dialect", "sqlite")


def redacted(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def is_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


class Database:
    """SQLite; storage.postgres.PostgresDatabase is the same interface on PostgreSQL."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = str(path)  # what messages name it by (a URL without its password)
        self.target = str(path)  # what database_for() opens it by
        self.busy_timeout_ms = busy_timeout_ms
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._slow_reader: aiosqlite.Connection | None = None
        self._inline_reader: _Writer | None = None
        self._turns = _WriteTurns()
        self._marked: set[Wake] = set()
        self.commits = 0  # write transactions committed (tests count batching with it)
        self._wakes: dict[Wake, list[asyncio.Event]] = {wake: [] for wake in Wake}

    def wake_event(self, wake: Wake) -> asyncio.Event:
        """An event set after every commit that marked `wake` (one per subscriber)."""
        event = asyncio.Event()
        self._wakes[wake].append(event)
        return event

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        path = self.path
        # check_same_thread=False: inside a transaction the loop's thread uses it (_Writer).
        writer = _Writer(lambda: sqlite3.connect(path, isolation_level=None,
                                                 check_same_thread=False), 64)
        self._writer = await self._connect(writer)
        _OWNER[self._writer] = self
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._migrate(self._writer)
        self._reader = await self._connect()
        self._slow_reader = await self._connect()
        inline = _Writer(lambda: sqlite3.connect(path, isolation_level=None,
                                                 check_same_thread=False), 64)
        await self._connect(inline)
        inline.inline = True  # from now on never a trip to its thread
        self._inline_reader = inline

    async def _connect(self, conn: aiosqlite.Connection | None = None) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await (conn or aiosqlite.connect(self.path, isolation_level=None))
        conn.row_factory = aiosqlite.Row
        await conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        if current > known_schema_version():
            raise SchemaTooNew(self.path, current, known_schema_version())
        for version, name, sql in _migrations():
            if version <= current:
                continue
            log.info("applying migration %s", name)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={version}")
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    async def schema_version(self) -> int:
        async with self.read() as conn:
            rows = list(await conn.execute_fetchall("PRAGMA user_version"))
        return int(rows[0][0]) if rows else 0

    async def close(self) -> None:
        if self._inline_reader is not None:
            self._inline_reader.inline = False  # closes on its own thread
        for conn in (self._inline_reader, self._slow_reader, self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._inline_reader = self._slow_reader = self._reader = self._writer = None

    def writers_waiting(self) -> int:
        """Write transactions waiting for their turn."""
        return self._turns.waiting

    @asynccontextmanager
    async def write(self, *, urgent: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction. Raises StorageUnavailable when the database cannot write.
        `urgent` (and any write while someone is waiting): goes before the ordinary writers
        waiting."""
        conn = self._require(self._writer)
        await self._turns.acquire(urgent or someone_waiting())
        try:
            try:
                await self._begin(conn)
            except BaseException as exc:
                # Cancelled (a stage stopping) while BEGIN was on its way: the connection's
                # thread runs it anyway, and the next writer (delivery's done mark on a
                # SIGTERM) would find a transaction open. The rollback is queued behind it
                # before the turn passes on.
                await self._rollback(conn)
                if self._unavailable(exc):
                    raise StorageUnavailable(str(exc)) from exc
                raise
            self._marked.clear()
            along = _ALONG.get()
            try:
                with self._inline(conn):
                    yield conn
                    if along is not None and not along.committed:
                        await along.work(conn)
                    else:
                        along = None
                await conn.commit()
                self.commits += 1
                if along is not None:
                    along.committed = True
                held = _HELD.get()
                for wake in self._marked:
                    for event in self._wakes[wake]:
                        if held is not None and held.open:
                            held.events.append(event)
                        else:
                            event.set()
            except BaseException as exc:
                await self._rollback(conn)
                if self._unavailable(exc):
                    raise StorageUnavailable(str(exc)) from exc
                raise
        finally:
            self._turns.release()

    # What differs between the backends' transactions.

    async def _begin(self, conn: aiosqlite.Connection) -> None:
        # The turn is ours and the last COMMIT came back: the connection's thread is idle.
        if isinstance(conn, _Writer) and conn.begin_at_once(self.busy_timeout_ms):
            return
        await conn.execute("BEGIN IMMEDIATE")

    async def _rollback(self, conn: aiosqlite.Connection) -> None:
        await _rollback(conn)

    def _unavailable(self, exc: BaseException) -> bool:
        return _unavailable(exc)

    def _inline(self, conn: aiosqlite.Connection) -> contextlib.AbstractContextManager[None]:
        return _inline(conn)

    @asynccontextmanager
    async def read(self, *, slow: bool = False, inline: bool = False
                   ) -> AsyncIterator[aiosqlite.Connection]:
        """A connection for reads. WAL lets it see the last committed state. A connection
        runs one statement at a time, so `slow` reads (a search over every past incident)
        have one of their own: the reads a card, a press or a command waits for never
        queue behind them. `inline` reads run on the caller's thread, like the statements
        of a write transaction: no trip to a connection's thread, which under load waits a
        turn of the event loop per query; only for reads of a few rows by key (the loop
        waits for them)."""
        if inline:
            yield self._require(self._inline_reader)
        else:
            yield self._require(self._slow_reader if slow else self._reader)

    @staticmethod
    def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("Database.open() was not called")
        return conn


async def _rollback(conn: aiosqlite.Connection) -> None:
    try:
        await conn.rollback()
    except sqlite3.Error:
        log.exception("rollback failed")


def _unavailable(exc: BaseException) -> bool:
    """SQLite itself failing (disk full, I/O, locked, corrupt), not a constraint refusing."""
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError)


@asynccontextmanager
async def savepoint(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """A part of a write transaction that fails alone: on an error what it wrote is undone
    and the error raised, and the transaction goes on (so one payload of a batch can fail
    without the others). SQLite failing is StorageUnavailable: the transaction itself may
    be gone (SQLite rolls back the whole of it on some errors, e.g. a full disk)."""
    owner = _OWNER.get(conn)
    unavailable = owner._unavailable if owner is not None else _unavailable
    await conn.execute("SAVEPOINT part")
    try:
        yield
    except BaseException as exc:
        try:
            await conn.execute("ROLLBACK TO SAVEPOINT part")
            await conn.execute("RELEASE SAVEPOINT part")
        except Exception as undo:
            raise StorageUnavailable(str(undo)) from exc
        if unavailable(exc):
            raise StorageUnavailable(str(exc)) from exc
        raise
    await conn.execute("RELEASE SAVEPOINT part")


@contextmanager
def _inline(conn: aiosqlite.Connection) -> Iterator[None]:
    if not isinstance(conn, _Writer):
        yield
        return
    conn.inline = True
    try:
        yield
    finally:
        conn.inline = False


def _split_sql(sql: str) -> list[str]:
    """Split a migration file on ';' at line ends (migrations hold no triggers)."""
    parts, buf = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            continue
        buf.append(line)
        if stripped.endswith(";"):
            parts.append("\n".join(buf))
            buf = []
    if "".join(buf).strip():
        parts.append("\n".join(buf))
    return parts
