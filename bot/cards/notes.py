"""Thread notes and card syncs, queued in the caller's transaction for every chat
the incident lives in (routing may put one incident in several chats)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.cards import card as cards
from bot.models import Incident
from storage import outbox, repo
from storage.repo import Conn


def seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def render(kind: str, locale: str, tz_name: str, **ctx: Any) -> str:
    return cards.render_thread(kind, tz=ZoneInfo(tz_name), locale=locale, **ctx)


async def chats_of(conn: Conn, incident: Incident) -> list[int]:
    chats = [c.chat_id for c in await repo.cards_of(conn, incident.id)]
    return chats or [incident.chat_id]


async def reply(
    conn: Conn,
    incident: Incident,
    kind: str,
    now: datetime,
    locale: str,
    tz_name: str,
    **ctx: Any,
) -> None:
    text = render(kind, locale, tz_name, incident=incident, **ctx)
    await reply_text(conn, incident, text, now, note=kind)


async def reply_text(conn: Conn, incident: Incident, text: str, now: datetime,
                     note: str = "text") -> None:
    for chat_id in await chats_of(conn, incident):
        await outbox.enqueue(
            conn, kind=outbox.REPLY, chat_id=chat_id, incident_id=incident.id, now=now,
            payload={"text": text, "note": note},
        )


async def card_changed(conn: Conn, incident: Incident, now: datetime) -> None:
    for chat_id in await chats_of(conn, incident):
        await outbox.enqueue(
            conn, kind=outbox.CARD, chat_id=chat_id, incident_id=incident.id, now=now
        )
