"""Which backend a configured target names: a SQLite file path or a postgresql:// URL."""

from __future__ import annotations

from pathlib import Path

from storage.db import BUSY_TIMEOUT_MS, Database, is_url
from storage.postgres import PostgresDatabase


def database_for(target: str | Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """The Database for a SQLite file path or a postgresql:// URL."""
    if is_url(target):
        return PostgresDatabase(str(target), busy_timeout_ms)
    return Database(target, busy_timeout_ms)
