"""The silences table: matchers, who set them, until when, and their Alertmanager twin."""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite

from bot.models import Matcher, Silence
from storage.repo.sql import Conn, fetch_all, fetch_one, parse_ts, req_ts, to_json, ts


def _silence(row: aiosqlite.Row) -> Silence:
    return Silence(
        id=row["id"],
        matchers=[Matcher.model_validate(m) for m in json.loads(row["matchers"])],
        reason=row["reason"],
        created_by=row["created_by"],
        created_by_id=row["created_by_id"],
        starts_at=req_ts(row["starts_at"]),
        ends_at=req_ts(row["ends_at"]),
        expired_at=parse_ts(row["expired_at"]),
        chat_id=row["chat_id"],
    )


async def insert_silence(conn: Conn, silence: Silence) -> None:
    await conn.execute(
        """INSERT INTO silences (id, matchers, reason, created_by, created_by_id, starts_at,
               ends_at, chat_id) VALUES (?,?,?,?,?,?,?,?)""",
        (
            silence.id, to_json([m.model_dump() for m in silence.matchers]), silence.reason,
            silence.created_by, silence.created_by_id, ts(silence.starts_at),
            ts(silence.ends_at), silence.chat_id,
        ),
    )


async def active_silences(conn: Conn, now: datetime) -> list[Silence]:
    rows = await fetch_all(
        conn,
        """SELECT * FROM silences WHERE expired_at IS NULL AND starts_at <= ? AND ends_at > ?
           ORDER BY ends_at""",
        (ts(now), ts(now)),
    )
    return [_silence(r) for r in rows]


async def get_silence(conn: Conn, silence_id: str) -> Silence | None:
    row = await fetch_one(conn, "SELECT * FROM silences WHERE id = ?", (silence_id,))
    return _silence(row) if row else None


async def set_silence_am_id(conn: Conn, silence_id: str, am_id: str) -> None:
    await conn.execute("UPDATE silences SET am_id = ? WHERE id = ?", (am_id, silence_id))


async def silence_extras(conn: Conn, silence_id: str) -> tuple[int | None, str | None]:
    row = await fetch_one(conn, "SELECT chat_id, am_id FROM silences WHERE id = ?", (silence_id,))
    return (row["chat_id"], row["am_id"]) if row else (None, None)


async def known_am_ids(conn: Conn) -> set[str]:
    rows = await fetch_all(conn, "SELECT am_id FROM silences WHERE am_id IS NOT NULL")
    return {r[0] for r in rows}


async def expire_silence(conn: Conn, silence_id: str, now: datetime) -> bool:
    cur = await conn.execute(
        """UPDATE silences SET expired_at = ?, announced = 1
           WHERE id = ? AND expired_at IS NULL AND ends_at > ?""",
        (ts(now), silence_id, ts(now)),
    )
    return cur.rowcount == 1


async def ended_unannounced(conn: Conn, now: datetime) -> list[Silence]:
    rows = await fetch_all(
        conn,
        "SELECT * FROM silences WHERE announced = 0 AND (expired_at IS NOT NULL OR ends_at <= ?)",
        (ts(now),),
    )
    return [_silence(r) for r in rows]


async def mark_announced(conn: Conn, silence_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE silences SET announced = 1 WHERE id = ? AND announced = 0", (silence_id,)
    )
    return cur.rowcount == 1
