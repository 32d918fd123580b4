"""The meta table: small named values the bot keeps between runs."""

from __future__ import annotations

from storage.repo.sql import Conn, fetch_one


async def get_meta(conn: Conn, key: str) -> str | None:
    row = await fetch_one(conn, "SELECT value FROM meta WHERE key = ?", (key,))
    return row[0] if row else None


async def set_meta(conn: Conn, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
        (key, value, value),
    )
