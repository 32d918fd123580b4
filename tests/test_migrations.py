"""Upgrades: migrations are numbered once each and in order, and a database written by an
older version is migrated at open with its rows kept (what docs/operations.md promises)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from storage.db import Database, _migrations, _split_sql, known_schema_version

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

    db = Database(path)
    await db.open()
    try:
        async with db.read() as reader:
            async with reader.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
                assert row is not None and row[0] == known_schema_version()
            async with reader.execute("SELECT value FROM meta WHERE key = 'heartbeat'") as cur:
                row = await cur.fetchone()
                assert row is not None and row[0] == "kept"
    finally:
        await db.close()
