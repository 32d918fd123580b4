"""Running statements and converting column values, shared by every table's module."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

Conn = aiosqlite.Connection


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def req_ts(value: str) -> datetime:
    """A NOT NULL time column."""
    return datetime.fromisoformat(value)


# json.dumps(value, sort_keys=True, ensure_ascii=False), without building an encoder per call.
_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def to_json(value: Any) -> str:
    return _JSON.encode(value)


# One trip to the connection's thread per query (execute, fetch and close together): each
# trip waits for a turn of the event loop, which under load is most of a query's time.


async def fetch_one(conn: Conn, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
    """The first row of a query that selects one (by key, or an aggregate)."""
    rows = await conn.execute_fetchall(sql, tuple(args))
    return next(iter(rows), None)


async def fetch_all(conn: Conn, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
    return list(await conn.execute_fetchall(sql, tuple(args)))
