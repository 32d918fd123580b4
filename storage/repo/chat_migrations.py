"""The chat_migrations table: group -> supergroup moves, and moving rows with them."""

from __future__ import annotations

from datetime import datetime

from storage.repo.sql import Conn, fetch_all, ts


async def record_migration(conn: Conn, old: int, new: int, now: datetime) -> bool:
    cur = await conn.execute(
        "INSERT INTO chat_migrations (old_chat_id, new_chat_id, at) VALUES (?,?,?)"
        " ON CONFLICT DO NOTHING",
        (old, new, ts(now)),
    )
    return cur.rowcount == 1


async def migrations(conn: Conn) -> list[tuple[int, int]]:
    rows = await fetch_all(conn, "SELECT old_chat_id, new_chat_id FROM chat_migrations ORDER BY at")
    return [(int(r[0]), int(r[1])) for r in rows]


async def move_chat(conn: Conn, old: int, new: int) -> list[str]:
    """Point everything at the new chat. Open incidents' cards must be posted again
    (messages of the old group cannot be edited any more); returns their ids."""
    await conn.execute(
        "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND state IN ('pending', 'sending')",
        (new, old),
    )
    open_ids = [
        r[0] for r in await fetch_all(
            conn, "SELECT id FROM incidents WHERE chat_id = ? AND status = 'firing'", (old,)
        )
    ]
    await conn.execute("UPDATE incidents SET chat_id = ? WHERE chat_id = ?", (new, old))
    await conn.execute(
        """UPDATE cards SET chat_id = ?, message_id = NULL, last_rendered_hash = NULL,
               message_thread_id = NULL
           WHERE chat_id = ?
             AND incident_id IN (SELECT id FROM incidents WHERE status = 'firing')""",
        (new, old),
    )
    await conn.execute("UPDATE silences SET chat_id = ? WHERE chat_id = ?", (new, old))
    # A storm's digest still going is posted again there too (its held cards moved with it).
    await conn.execute(
        """UPDATE digests SET chat_id = ?, message_id = NULL, last_rendered_hash = NULL
           WHERE chat_id = ? AND ended_at IS NULL""",
        (new, old),
    )
    return open_ids
