"""`python -m bot copy-db --to postgresql://...`: a SQLite database the real app filled
(alerts through the webhook, presses, cards, the outbox, the inbox, the knowledge index) is
copied into an empty PostgreSQL schema and every table reads back the same; a table a later
migration adds is copied without a change to the copy; a destination with rows, another
schema version or a bot still running on the file are refused with one line and leave the
destination as it was."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from bot_process import BotProcess
from harness import ALICE, AppFactory, Harness
from pg import pg_schema, sqlite_only

from storage import knowledge
from storage.backends import database_for
from storage.copy_db import CopyError, copy_db, source_tables
from storage.db import Database, known_schema_version
from storage.schema import FULL_TEXT

ROOT = Path(__file__).resolve().parent.parent
# The copy's source is a SQLite file the app filled; its destination, PostgreSQL, is made here.
pytestmark = sqlite_only("copy-db copies a SQLite file")


async def _fill(h: Harness) -> None:
    """Real traffic: two incidents, one approved (and run, dry-run), one resolved."""
    body = await h.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await h.settled()
    card = await h.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    await h.press(card["message_id"], "Approve", ALICE)
    await h.settled()
    await h.alert("single-firing.json")
    await h.settled()
    await h.alert("single-resolved.json")
    await h.settled()
    await h.alert("two-alerts-firing.json")  # its analysis indexes the incidents before it
    await h.settled()


@pytest.fixture
async def filled(start_app: AppFactory, tmp_path: Path) -> Path:
    h = await start_app()
    await _fill(h)
    await h.app.stop()
    return tmp_path / "opsgate.db"


def _sqlite_rows(path: Path, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        names = ", ".join(f'"{c}"' for c in columns)
        return sorted(conn.execute(f'SELECT {names} FROM "{table}"').fetchall(), key=repr)
    finally:
        conn.close()


async def _pg_rows(url: str, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        names = ", ".join(f'"{c}"' for c in columns)
        return sorted((tuple(r) for r in await conn.fetch(f'SELECT {names} FROM "{table}"')),
                      key=repr)
    finally:
        await conn.close()


async def _sqlite_search(path: Path, terms: list[str]) -> list[str]:
    db = Database(path)
    await db.open()
    try:
        async with db.read(slow=True) as conn:
            return [h.doc.ref for h in await knowledge.search(conn, terms, limit=5)]
    finally:
        await db.close()


def _compared_columns(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        return {t.name: (["rowid"] if t.name in ("cards", *FULL_TEXT) else [])
                + list(t.columns) for t in source_tables(conn)}
    finally:
        conn.close()


async def test_round_trip_every_table_reads_back_the_same(filled: Path) -> None:
    tables = _compared_columns(filled)
    counts = {t: len(_sqlite_rows(filled, t, c)) for t, c in tables.items()}
    # The app filled what matters: the comparison below is not of empty tables.
    for table in ("incidents", "alerts", "cards", "decisions", "approvals", "audit",
                  "outbox", "inbox", "meta", "knowledge", *FULL_TEXT,
                  "incident_alert_counts"):
        assert counts[table] > 0, (table, counts)
    assert not any(t.startswith("knowledge_fts_") or t.startswith("sqlite_") for t in tables)
    async with pg_schema() as url:
        report = await copy_db(filled, url, batch=7)  # several batches per table
        assert report.schema_version == known_schema_version()
        assert report.rows == counts
        for table, columns in tables.items():
            assert await _pg_rows(url, table, columns) == _sqlite_rows(filled, table, columns), \
                table
        # New rows continue after the copied ids, and the app runs on the copy.
        db = database_for(url)
        await db.open()
        try:
            async with db.write() as conn:
                cur = await conn.execute(
                    "INSERT INTO audit (at, action, result) VALUES ('now', 'x', 'y') "
                    "RETURNING id")
                row = await cur.fetchone()
            assert row is not None and row[0] > max(
                r[0] for r in _sqlite_rows(filled, "audit", ["id"]))
            # The knowledge index answers on the copy as it did on SQLite.
            async with db.read(slow=True) as conn:
                on_copy = await knowledge.search(conn, ["checkout"], limit=5)
            assert [h.doc.ref for h in on_copy] == await _sqlite_search(filled, ["checkout"])
            assert on_copy
        finally:
            await db.close()


async def test_a_table_added_later_is_copied_too(filled: Path) -> None:
    # As a later migration would: the same new table on both sides, rows in SQLite.
    conn = sqlite3.connect(filled)
    conn.execute("CREATE TABLE later_things (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                 "weight REAL)")
    conn.executemany("INSERT INTO later_things (name, weight) VALUES (?, ?)",
                     [(f"t{i}", i / 2) for i in range(25)])
    conn.commit()
    conn.close()
    async with pg_schema() as url:
        db = database_for(url)
        await db.open()
        await db.close()
        admin = await asyncpg.connect(url)
        await admin.execute("CREATE TABLE later_things (id BIGINT PRIMARY KEY, "
                            "name TEXT NOT NULL, weight DOUBLE PRECISION)")
        await admin.close()
        report = await copy_db(filled, url)
        assert report.rows["later_things"] == 25
        assert await _pg_rows(url, "later_things", ["id", "name", "weight"]) == \
            _sqlite_rows(filled, "later_things", ["id", "name", "weight"])


async def _counts(url: str) -> dict[str, int]:
    """Rows per table of the test's schema."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch("SELECT table_name FROM information_schema.tables "
                                  "WHERE table_schema = current_schema()")
        return {r[0]: await conn.fetchval(f'SELECT count(*) FROM "{r[0]}"') for r in tables}
    finally:
        await conn.close()


async def test_refusals_leave_the_destination_as_it_was(filled: Path, tmp_path: Path) -> None:
    async with pg_schema() as url:
        first = await copy_db(filled, url)
        before = await _counts(url)
        assert before["incidents"] == first.rows["incidents"]
        with pytest.raises(CopyError, match="already holds rows"):
            await copy_db(filled, url)
        assert await _counts(url) == before

    older = tmp_path / "older.db"
    older.write_bytes(filled.read_bytes())
    conn = sqlite3.connect(older)
    conn.execute(f"PRAGMA user_version={known_schema_version() - 1}")
    conn.close()
    async with pg_schema() as url:
        with pytest.raises(CopyError, match=f"schema {known_schema_version() - 1}"):
            await copy_db(older, url)
        migrated = await _counts(url)
        assert migrated.pop("opsgate_schema") == 1
        assert migrated and set(migrated.values()) == {0}


async def test_a_bot_running_on_the_file_is_refused(filled: Path, botproc: BotProcess) -> None:
    assert Path(botproc.db) == filled
    await botproc.start()
    async with pg_schema() as url:
        with pytest.raises(CopyError, match=r"in use by another opsgate process.*stop the bot"):
            await copy_db(filled, url)
        assert await _counts(url) == {}  # refused before anything was made
    assert await botproc.terminate() == 0


async def _cli(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")},
             "PYTHONPATH": str(ROOT), **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_command_prints_one_line(filled: Path) -> None:
    async with pg_schema() as url:
        code, out, err = await _cli("copy-db", "--to", url, DATABASE_PATH=str(filled))
        assert code == 0, err
        (line,) = out.strip().splitlines()
        assert line.startswith("copy-db: ") and str(filled) in line and "incidents 3" in line
        code, out, err = await _cli("copy-db", "--to", url, DATABASE_PATH=str(filled))
        assert code == 1 and out == ""
        (line,) = err.strip().splitlines()
        assert line.startswith("opsgate: copy-db: ") and "already holds rows" in line
        # backup on PostgreSQL: a pointer to pg_dump, in one line, and no file.
        code, out, err = await _cli("backup", str(filled.with_name("x.db")), DATABASE_URL=url)
        assert code == 1 and out == ""
        (line,) = err.strip().splitlines()
        assert line.startswith("opsgate: backup: ") and "pg_dump" in line
        assert not filled.with_name("x.db").exists()
