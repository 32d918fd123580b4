"""A consistent copy of the SQLite database while the bot runs (SQLite's online backup API).

The copy is taken in one step inside one read transaction, so it is one committed state;
in WAL mode that neither blocks the bot's writes nor waits for them. It is written next
to the target under a temporary name, checked, switched to a single-file journal, and only
then given its name (never over an existing file), so a failed backup leaves no file
that looks like a good one.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


class BackupError(Exception):
    """The backup could not be made; the message says what to do."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    schema_version: int
    size: int
    rows: dict[str, int] = field(default_factory=dict)


def _count_rows(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per table, leaving out virtual tables and their shadow tables (indexes)."""
    tables = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    virtual = [name for name, sql in tables if (sql or "").upper().startswith("CREATE VIRTUAL")]
    names = sorted(name for name, _ in tables
                   if not any(name == v or name.startswith(v + "_") for v in virtual))
    return {name: int(conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
            for name in names}


def backup(source: str | Path, target: str | Path) -> BackupInfo:
    """Copy the database at `source` to the new file `target`. Raises BackupError."""
    src_path, dst_path = Path(source), Path(target)
    if not src_path.is_file():
        raise BackupError(f"{src_path} does not exist (check DATABASE_PATH)")
    if dst_path.exists():
        raise BackupError(f"{dst_path} already exists; name a new file")
    if not dst_path.parent.is_dir():
        raise BackupError(f"{dst_path.parent} is not a directory; create it first")
    if dst_path.resolve() == src_path.resolve():
        raise BackupError("the backup must be another file than DATABASE_PATH")
    partial = dst_path.with_name(f".{dst_path.name}.partial-{os.getpid()}")
    try:
        src = sqlite3.connect(f"file:{src_path}?mode=rw", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {src_path}: {exc}") from exc
    try:
        try:
            dst = sqlite3.connect(partial)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot create {partial}: {exc}") from exc
        try:
            src.backup(dst)  # pages=-1: one step, one snapshot
            # A standalone file: no -wal next to the copy (the bot turns WAL on at open).
            dst.execute("PRAGMA journal_mode=DELETE")
            problem = dst.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise BackupError(f"the copy fails SQLite's check: {problem}")
            version = int(dst.execute("PRAGMA user_version").fetchone()[0])
            rows = _count_rows(dst)
        except sqlite3.Error as exc:
            raise BackupError(f"backup failed: {exc}") from exc
        finally:
            dst.close()
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        try:
            os.link(partial, dst_path)  # fails instead of replacing a file made meanwhile
        except FileExistsError as exc:
            raise BackupError(f"{dst_path} already exists; name a new file") from exc
        except OSError as exc:
            raise BackupError(f"cannot create {dst_path}: {exc.strerror or exc}") from exc
    finally:
        src.close()
        partial.unlink(missing_ok=True)
    return BackupInfo(dst_path, version, dst_path.stat().st_size, rows)
