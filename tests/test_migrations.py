"""Upgrades: migrations are numbered once each and in order, and a database written by an
older version is migrated at open with its rows kept (what docs/operations.md promises)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from factories import schema_before

from storage.db import Database, _migrations, _split_sql, known_schema_version
from storage.schema import table_columns

MIGRATIONS = Path(__file__).resolve().parent.parent / "storage" / "migrations"


def test_migration_numbers_are_unique_and_without_gaps() -> None:
    # Two branches adding the same number would both look applied to a database at that
    # version, and one of them would never run.
    numbers = sorted(int(p.name[:3]) for p in MIGRATIONS.glob("*.sql"))
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert known_schema_version() == numbers[-1]


async def test_an_older_database_is_migrated_at_open_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = _migrations()[0]
    conn = sqlite3.connect(path)
    for statement in _split_sql(first[2]):
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version={first[0]}")
    conn.execute("INSERT INTO meta (key, value) VALUES ('heartbeat', 'kept')")
    conn.commit()
    conn.close()

    assert await rows_after_open(path, "PRAGMA user_version") == [(known_schema_version(),)]
    assert await rows_after_open(path, "SELECT value FROM meta WHERE key = 'heartbeat'") == [
        ("kept",)]


async def rows_after_open(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Open (and so migrate) the database, and read `sql` from it."""
    db = Database(path)
    await db.open()
    try:
        async with db.read() as reader:
            async with reader.execute(sql) as cur:
                return [tuple(r) for r in await cur.fetchall()]
    finally:
        await db.close()


async def test_an_incident_silenced_before_silences_had_a_chat_stays_silenced_in_its_chats(
        tmp_path: Path) -> None:
    """The one silence mark per incident becomes the mark of each of its cards."""
    path = tmp_path / "old.db"
    conn = schema_before(path, 6)
    conn.execute(
        """INSERT INTO incidents (id, group_key, group_labels, title, alertname, severity,
               target, namespace, status, firing_count, resolved_count, opened_at, updated_at,
               silence_id, chat_id)
           VALUES ('INC-1', 'k', '{}', 't', 'a', 'warning', 't', 'n', 'firing', 1, 0,
                   '2026-11-27T13:00:00+00:00', '2026-11-27T13:00:00+00:00', 'S-1', -1)""")
    conn.executemany("INSERT INTO cards (incident_id, chat_id) VALUES ('INC-1', ?)",
                     [(-1,), (-2,)])
    conn.commit()
    conn.close()

    assert await rows_after_open(path, "SELECT chat_id, silence_id FROM cards ORDER BY chat_id"
                                 ) == [(-2, "S-1"), (-1, "S-1")]


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_has_the_same_tables_and_columns_as_sqlite(
        db: Database, sqlite_db: Database) -> None:
    """The PostgreSQL baseline and the SQLite migrations describe one schema: every table
    and column of one is in the other (PostgreSQL adds only the rowid SQLite has without
    naming it, and its text-search vector)."""
    async with db.read() as conn:
        pg = await table_columns(conn)
    async with sqlite_db.read() as conn:
        lite = await table_columns(conn)
    assert sorted(pg) == sorted(lite)
    extra = {"cards": {"rowid"}, "knowledge_fts": {"tsv"}, "knowledge_recent_fts": {"tsv"}}
    for table, columns in lite.items():
        assert set(pg[table]) - extra.get(table, set()) == set(columns), table
    assert await db.schema_version() == known_schema_version()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_columns_hold_what_sqlite_columns_hold(db: Database) -> None:
    """SQLite's INTEGER is 64 bits and its REAL double precision; PostgreSQL's names mean 32
    bits and single precision, so its schema must never use them (a Telegram id or a unix
    time would not fit)."""
    async with db.read() as conn:
        narrow = await conn.execute_fetchall(
            """SELECT table_name, column_name, data_type FROM information_schema.columns
               WHERE table_schema = current_schema()
                 AND data_type IN ('integer', 'smallint', 'real')""")
    assert [tuple(r) for r in narrow] == []
