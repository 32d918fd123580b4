"""The cards table: where each incident's card lives in each chat, and its last render."""

from __future__ import annotations

from datetime import datetime

import aiosqlite

from storage.repo.sql import Conn, fetch_all, fetch_one, ts


class CardRow:
    __slots__ = ("chat_id", "digest_id", "held", "incident_id", "last_rendered_hash",
                 "message_id", "message_thread_id", "silence_id")

    def __init__(self, row: aiosqlite.Row) -> None:
        self.incident_id: str = row["incident_id"]
        self.chat_id: int = row["chat_id"]
        self.message_id: int | None = row["message_id"]
        self.message_thread_id: int | None = row["message_thread_id"]
        self.last_rendered_hash: str | None = row["last_rendered_hash"]
        # The silence that keeps the incident quiet in this chat (None: it is not).
        self.silence_id: str | None = row["silence_id"]
        # The storm digest that lists it here; held: it has no card of its own (yet).
        self.digest_id: int | None = row["digest_id"]
        self.held: bool = bool(row["held"])


async def get_card(conn: Conn, incident_id: str, chat_id: int) -> CardRow | None:
    row = await fetch_one(
        conn, "SELECT * FROM cards WHERE incident_id = ? AND chat_id = ?", (incident_id, chat_id)
    )
    return CardRow(row) if row else None


async def card_by_message(conn: Conn, chat_id: int, message_id: int) -> CardRow | None:
    row = await fetch_one(
        conn, "SELECT * FROM cards WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
    )
    return CardRow(row) if row else None


async def save_card(
    conn: Conn,
    incident_id: str,
    chat_id: int,
    *,
    message_id: int | None,
    thread_id: int | None,
    rendered_hash: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO cards (incident_id, chat_id, message_id, message_thread_id,
               last_rendered_hash)
           VALUES (?,?,?,?,?)
           ON CONFLICT (incident_id, chat_id) DO UPDATE SET
               message_id = excluded.message_id,
               message_thread_id = excluded.message_thread_id,
               last_rendered_hash = excluded.last_rendered_hash""",
        (incident_id, chat_id, message_id, thread_id, rendered_hash),
    )


async def cards_of(conn: Conn, incident_id: str) -> list[CardRow]:
    """Every chat an incident lives in (one card each)."""
    rows = await fetch_all(conn, "SELECT * FROM cards WHERE incident_id = ? ORDER BY rowid",
                      (incident_id,))
    return [CardRow(r) for r in rows]


async def plan_card(conn: Conn, incident_id: str, chat_id: int, thread_id: int | None, *,
                    route_index: int = 0, remind_at: datetime | None = None) -> None:
    """Record where a card will go, before it is sent, which route brought it and when its
    first reminder is due (None: never)."""
    await conn.execute(
        """INSERT INTO cards (incident_id, chat_id, message_thread_id, route_index,
               next_remind_at)
           VALUES (?,?,?,?,?)
           ON CONFLICT (incident_id, chat_id) DO NOTHING""",
        (incident_id, chat_id, thread_id, route_index, ts(remind_at)),
    )


async def set_card_thread(conn: Conn, incident_id: str, chat_id: int, thread_id: int) -> None:
    await conn.execute(
        "UPDATE cards SET message_thread_id = ? WHERE incident_id = ? AND chat_id = ?",
        (thread_id, incident_id, chat_id),
    )


async def set_card_silence(conn: Conn, incident_id: str, chat_id: int,
                           silence_id: str | None) -> None:
    await conn.execute(
        "UPDATE cards SET silence_id = ? WHERE incident_id = ? AND chat_id = ?",
        (silence_id, incident_id, chat_id),
    )


async def cards_with_silence(conn: Conn, silence_id: str) -> list[CardRow]:
    """The cards (incident, chat) this silence keeps quiet."""
    rows = await fetch_all(conn, "SELECT * FROM cards WHERE silence_id = ? ORDER BY rowid",
                           (silence_id,))
    return [CardRow(r) for r in rows]
