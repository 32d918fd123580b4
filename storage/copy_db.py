"""Copy a SQLite database into an empty PostgreSQL one (`python -m bot copy-db --to URL`).

The copy is driven by the SQLite file's own schema: every table in sqlite_master is copied
(a table a later migration adds is copied without a change here), except SQLite's own and
the shadow tables behind a full-text index (the index's table itself is read like any
other: PostgreSQL keeps it as a plain table). The destination's schema is made by its own
migrations before the copy; here it only has to hold every column the source has, at the
same schema version, and no rows. Parents go before children (foreign keys), rows go in
batches (COPY), all of it in one transaction: a copy that fails leaves the destination as
empty as it found it. Identity counters then continue after the highest id SQLite ever
gave, so a new row never takes an old row's id.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from storage import sqlite_lock
from storage.db import SchemaTooNew, is_url, redacted
from storage.postgres import LOCK_KEY_SQL, PostgresDatabase

BATCH = 1000


class CopyError(Exception):
    """The copy was refused or failed; the message says what to do. Nothing was written."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]  # as SQLite names them
    parents: frozenset[str]  # tables its foreign keys point at
    has_rowid: bool  # an implicit rowid (not WITHOUT ROWID)


@dataclass(frozen=True)
class CopyReport:
    schema_version: int
    rows: dict[str, int] = field(default_factory=dict)  # per table, in the order copied

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def source_tables(conn: sqlite3.Connection) -> list[Table]:
    """The tables to copy, parents first."""
    found = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    virtual = [name for name, sql in found if (sql or "").upper().startswith("CREATE VIRTUAL")]
    tables: dict[str, Table] = {}
    for name, sql in found:
        if any(name.startswith(v + "_") for v in virtual):
            continue  # an index's shadow table: PostgreSQL keeps no such thing
        columns = tuple(row[1] for row in conn.execute(f'PRAGMA table_info("{name}")'))
        parents = frozenset(row[2] for row in conn.execute(
            f'PRAGMA foreign_key_list("{name}")') if row[2] != name)
        tables[name] = Table(name, columns, parents,
                             has_rowid="WITHOUT ROWID" not in (sql or "").upper())
    return _parents_first(tables)


def _parents_first(tables: dict[str, Table]) -> list[Table]:
    ordered: list[Table] = []
    done: set[str] = set()
    pending = dict(sorted(tables.items()))
    while pending:
        ready = [t for t in pending.values() if t.parents <= done | (t.parents - tables.keys())]
        if not ready:
            raise CopyError(f"foreign keys go round in a circle between {', '.join(pending)}")
        for table in ready:
            ordered.append(table)
            done.add(table.name)
            del pending[table.name]
    return ordered


@dataclass(frozen=True)
class _Column:
    name: str
    type: str  # PostgreSQL's name for it: bigint, text, double precision, ...
    generated: bool


async def _destination_columns(dest: asyncpg.Connection, table: str) -> dict[str, _Column]:
    rows = await dest.fetch(
        """SELECT a.attname, format_type(a.atttypid, NULL) AS type, a.attgenerated <> '' AS gen
           FROM pg_attribute a
           WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0
             AND NOT a.attisdropped""",
        table,
    )
    return {r["attname"]: _Column(r["attname"], r["type"], r["gen"]) for r in rows}


def _converter(pg_type: str) -> Callable[[Any], Any]:
    """SQLite's value as the Python value asyncpg writes into a column of `pg_type`. SQLite
    stores what it is given; a column's affinity only suggests a type."""
    if pg_type in ("bigint", "integer", "smallint"):
        return _to_int
    if pg_type in ("double precision", "real", "numeric"):
        return float
    if pg_type == "boolean":
        return bool
    if pg_type == "bytea":
        return lambda v: v if isinstance(v, bytes) else str(v).encode()
    if pg_type == "text" or pg_type.startswith(("character", "json")):
        return lambda v: v.decode() if isinstance(v, bytes) else str(v)
    return lambda v: v


def _to_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


async def copy_into(source: sqlite3.Connection, dest: asyncpg.Connection, *,
                    dest_version: int, batch: int = BATCH) -> CopyReport:
    """Copy every table of `source` into `dest` (migrated, at `dest_version`), in one
    transaction. Raises CopyError, leaving `dest` as it was."""
    version = int(source.execute("PRAGMA user_version").fetchone()[0])
    if version != dest_version:
        raise CopyError(
            f"the SQLite database has schema {version}, PostgreSQL {dest_version}: copy with "
            "the opsgate version that wrote the SQLite file (start it once on the file to "
            "migrate it if it is older)")
    tables = source_tables(source)
    rows: dict[str, int] = {}
    source.execute("BEGIN")  # one snapshot of the source for the whole copy
    try:
        async with dest.transaction():
            plans = [await _plan(dest, table) for table in tables]
            await _require_empty(dest, [table for table, _, _ in plans])
            for table, select, columns in plans:
                rows[table.name] = await _copy_table(source, dest, table, select, columns,
                                                     batch)
                await _continue_ids(source, dest, table.name, columns)
    finally:
        source.execute("ROLLBACK")
    return CopyReport(version, rows)


async def _plan(dest: asyncpg.Connection,
                table: Table) -> tuple[Table, list[str], list[_Column]]:
    """What to read from SQLite and which destination columns it goes into."""
    have = await _destination_columns(dest, table.name)
    if not have:
        raise CopyError(f"PostgreSQL has no table {table.name}: run the destination's "
                        "migrations with this opsgate version (open it once with DATABASE_URL)")
    missing = [c for c in table.columns if c not in have]
    if missing:
        raise CopyError(f"PostgreSQL's {table.name} has no column {', '.join(missing)}: "
                        "its schema is not this opsgate's")
    select = list(table.columns)
    # Tables whose queries use SQLite's implicit rowid have it as a column in PostgreSQL.
    if "rowid" in have and "rowid" not in table.columns and table.has_rowid:
        select.insert(0, "rowid")
    columns = [have[name] for name in select]
    generated = [c.name for c in columns if c.generated]
    if generated:
        raise CopyError(f"PostgreSQL computes {table.name}.{generated[0]} itself; "
                        "its schema is not this opsgate's")
    return table, select, columns


async def _require_empty(dest: asyncpg.Connection, tables: list[Table]) -> None:
    held = []
    for table in tables:
        if await dest.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table.name}")'):
            held.append(table.name)
    if held:
        raise CopyError(f"PostgreSQL already holds rows ({', '.join(held)}): copy into an "
                        "empty database (a new database or schema)")


def _batches(cursor: sqlite3.Cursor, size: int) -> Iterator[list[tuple[Any, ...]]]:
    while rows := cursor.fetchmany(size):
        yield rows


async def _copy_table(source: sqlite3.Connection, dest: asyncpg.Connection, table: Table,
                      select: list[str], columns: list[_Column], batch: int) -> int:
    names = ", ".join(f'"{c}"' for c in select)
    order = " ORDER BY rowid" if table.has_rowid else ""
    converters = [_converter(c.type) for c in columns]
    cursor = source.execute(f'SELECT {names} FROM "{table.name}"{order}')
    copied = 0
    for rows in _batches(cursor, batch):
        try:
            records = [tuple(None if v is None else convert(v)
                             for v, convert in zip(row, converters, strict=True))
                       for row in rows]
        except (TypeError, ValueError) as exc:
            raise CopyError(f"a row of {table.name} does not fit PostgreSQL's types: {exc}"
                            ) from exc
        await dest.copy_records_to_table(table.name, records=records,
                                         columns=[c.name for c in columns])
        copied += len(records)
    return copied


async def _continue_ids(source: sqlite3.Connection, dest: asyncpg.Connection, table: str,
                        columns: list[_Column]) -> None:
    """Identity columns carry on after the highest id the source gave (AUTOINCREMENT
    remembers ids of rows since deleted, in sqlite_sequence)."""
    given = 0
    if source.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        row = source.execute("SELECT seq FROM sqlite_sequence WHERE name = ?",
                             (table,)).fetchone()
        given = int(row[0]) if row else 0
    for column in columns:
        sequence = await dest.fetchval("SELECT pg_get_serial_sequence(quote_ident($1), $2)",
                                       table, column.name)
        if sequence is None:
            continue
        highest = await dest.fetchval(f'SELECT max("{column.name}") FROM "{table}"')
        last = max(int(highest or 0), given if column.name != "rowid" else 0)
        if last > 0:
            await dest.execute("SELECT setval($1, $2)", sequence, last)


def open_source(path: str | Path) -> sqlite3.Connection:
    """The SQLite file, read only. Raises CopyError."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise CopyError(f"cannot open {path}: {exc}") from exc
    return conn


async def copy_db(source_path: str | Path, url: str, *, batch: int = BATCH) -> CopyReport:
    """Copy the SQLite database at `source_path` into the empty PostgreSQL database at `url`
    (its migrations run first). Raises CopyError."""

    if not is_url(url):
        raise CopyError(f"{redacted(url)} is not a PostgreSQL URL: give "
                        "--to postgresql://user:password@host:5432/database")
    if not await asyncio.to_thread(Path(source_path).is_file):
        raise CopyError(f"{source_path} does not exist (check DATABASE_PATH)")
    try:
        lock = sqlite_lock.acquire(source_path)
    except sqlite_lock.InUse as exc:
        raise CopyError(f"{exc}: stop the bot first (what it stores after the copy would not "
                        "be in PostgreSQL)") from exc
    except OSError as exc:
        raise CopyError(f"cannot open {source_path}: {exc.strerror or exc}") from exc
    try:
        source = open_source(source_path)
        try:
            try:
                return await _copy_to_postgresql(source, url, batch)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, SchemaTooNew) as exc:
                raise CopyError(f"{redacted(url)}: {exc}") from exc
        finally:
            source.close()
    finally:
        lock.release()


async def _copy_to_postgresql(source: sqlite3.Connection, url: str, batch: int) -> CopyReport:
    dest_db = PostgresDatabase(url)
    try:
        await dest_db.open()  # the destination's own migrations make the schema
        version = await dest_db.schema_version()
    finally:
        await dest_db.close()
    dest = await asyncpg.connect(url)
    try:
        async with dest.transaction():
            # Writers of replicas started meanwhile wait for the copy to commit.
            await dest.execute("SELECT pg_advisory_xact_lock($1)",
                               await dest.fetchval(LOCK_KEY_SQL))
            return await copy_into(source, dest, dest_version=version, batch=batch)
    finally:
        await dest.close()
