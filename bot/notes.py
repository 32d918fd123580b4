"""Thread notes: a reply under an incident's card, queued in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot import cards
from bot.models import Incident
from storage import outbox
from storage.repo import Conn


def seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def render(kind: str, locale: str, tz_name: str, **ctx: Any) -> str:
    return cards.render_thread(kind, tz=ZoneInfo(tz_name), locale=locale, **ctx)


async def reply(
    conn: Conn,
    incident: Incident,
    kind: str,
    now: datetime,
    locale: str,
    tz_name: str,
    *,
    payload_extra: dict[str, Any] | None = None,
    **ctx: Any,
) -> None:
    text = render(kind, locale, tz_name, incident=incident, **ctx)
    await outbox.enqueue(
        conn,
        kind=outbox.REPLY,
        chat_id=incident.chat_id,
        incident_id=incident.id,
        now=now,
        payload={"text": text, "note": kind, **(payload_extra or {})},
    )


async def reply_text(conn: Conn, incident: Incident, text: str, now: datetime,
                     note: str = "text") -> None:
    await outbox.enqueue(
        conn, kind=outbox.REPLY, chat_id=incident.chat_id, incident_id=incident.id, now=now,
        payload={"text": text, "note": note},
    )


async def card_changed(conn: Conn, incident: Incident, now: datetime) -> None:
    await outbox.enqueue(
        conn, kind=outbox.CARD, chat_id=incident.chat_id, incident_id=incident.id, now=now
    )
