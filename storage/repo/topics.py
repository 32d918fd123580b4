"""The topics table: the forum topic each incident group got in a chat."""

from __future__ import annotations

from storage.repo.sql import Conn, fetch_one


async def get_topic(conn: Conn, chat_id: int, group_key: str) -> tuple[int, bool] | None:
    row = await fetch_one(
        conn, "SELECT thread_id, closed FROM topics WHERE chat_id = ? AND group_key = ?",
        (chat_id, group_key),
    )
    return (int(row[0]), bool(row[1])) if row else None


async def save_topic(conn: Conn, chat_id: int, group_key: str, thread_id: int, name: str,
                     closed: bool = False) -> None:
    await conn.execute(
        """INSERT INTO topics (chat_id, group_key, thread_id, name, closed) VALUES (?,?,?,?,?)
           ON CONFLICT (chat_id, group_key) DO UPDATE SET
               thread_id = excluded.thread_id, name = excluded.name, closed = excluded.closed""",
        (chat_id, group_key, thread_id, name, int(closed)),
    )
