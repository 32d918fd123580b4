"""`python -m bot backup FILE` as a subprocess, while the real app runs and writes: the copy
opens, holds the rows and the schema version, and is one file; bad targets are refused with
one line and a non-zero exit, leaving nothing behind."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

from harness import Harness
from pg import sqlite_only

from storage.db import known_schema_version

ROOT = Path(__file__).resolve().parent.parent


async def run_backup(database: Path | str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "TELEGRAM_"))}
    env["DATABASE_PATH"] = str(database)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "backup", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        raise
    return proc.returncode or 0, out.decode(), err.decode()


def generic(n: int) -> dict[str, str]:
    return {"title": f"Backup load {n}", "id": f"load-{n}", "severity": "warning"}


@sqlite_only("SQLite's online backup; PostgreSQL's is pg_dump")
async def test_backup_while_the_app_writes(app: Harness, tmp_path: Path) -> None:
    first = (await app.alert("crashloop-firing.json"))["incidents"][0]
    await app.wait_card()
    source = Path(app.db.path)
    target = tmp_path / "copies" / "opsgate-copy.db"
    target.parent.mkdir()

    # Alerts keep arriving while the copy is taken.
    async def load() -> int:
        stored = 0
        for n in range(30):
            status, _ = await app.post("/alerts/generic", generic(n))
            stored += status == 200
        return stored

    writes = asyncio.create_task(load())
    code, out, err = await run_backup(source, str(target))
    stored = await writes
    assert code == 0, err
    assert stored == 30
    assert str(target) in out and f"schema {known_schema_version()}" in out

    copy = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
    try:
        assert copy.execute("PRAGMA user_version").fetchone()[0] == known_schema_version()
        assert copy.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        ids = {r[0] for r in copy.execute("SELECT id FROM incidents")}
        assert first in ids
        # One committed state: every incident in the copy has its alerts and decision.
        orphans = copy.execute(
            "SELECT COUNT(*) FROM incidents i WHERE NOT EXISTS "
            "(SELECT 1 FROM alerts a WHERE a.incident_id = i.id)").fetchone()[0]
        assert orphans == 0
        copied = copy.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    finally:
        copy.close()
    assert f"incidents {copied}" in out
    assert sorted(p.name for p in target.parent.iterdir()) == ["opsgate-copy.db"]
    # The running app is unaffected: it still takes alerts.
    status, _ = await app.post("/alerts/generic", generic(99))
    assert status == 200


@sqlite_only("SQLite's online backup; PostgreSQL's is pg_dump")
async def test_backup_refuses_an_existing_file(app: Harness, tmp_path: Path) -> None:
    target = tmp_path / "exists.db"
    target.write_bytes(b"keep me")
    code, _, err = await run_backup(app.db.path, str(target))
    assert code != 0
    assert err.strip().count("\n") == 0 and "already exists" in err, err
    assert target.read_bytes() == b"keep me"


async def test_backup_names_a_missing_database(tmp_path: Path) -> None:
    code, _, err = await run_backup(tmp_path / "nothing.db", str(tmp_path / "copy.db"))
    assert code != 0
    assert "does not exist" in err and "DATABASE_PATH" in err and err.count("\n") == 1, err
    assert not (tmp_path / "copy.db").exists()
    assert not (tmp_path / "nothing.db").exists(), "the backup must not create the source"


@sqlite_only("SQLite's online backup; PostgreSQL's is pg_dump")
async def test_backup_needs_an_existing_directory(app: Harness, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "copy.db"
    code, _, err = await run_backup(app.db.path, str(target))
    assert code != 0 and "not a directory" in err and err.count("\n") == 1, err
    assert not target.parent.exists()

