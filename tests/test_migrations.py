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
    conn = sqlite3.connect(path)
    for version, _, sql in _migrations():
        if version >= 6:
            break
        for statement in _split_sql(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
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
