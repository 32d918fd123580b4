"""Thread notes and card syncs, queued in the caller's transaction for every chat
the incident lives in (routing may put one incident in several chats)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.cards import card as cards
from bot.models import Incident, severity_rank
from storage import outbox, repo
from storage.repo import Conn

log = logging.getLogger(__name__)

DIGEST_SETTLE = 2.0  # seconds the changes of a digest's incidents gather into one render


@dataclass(frozen=True)
class Voice:
    """How notes speak: their language and the time zone of the times they show."""

    locale: str
    tz_name: str


def render(kind: str, voice: Voice, **ctx: Any) -> str:
    return cards.render_thread(kind, tz=ZoneInfo(voice.tz_name), locale=voice.locale, **ctx)


async def chats_of(conn: Conn, incident: Incident) -> list[int]:
    return _hearing(await repo.cards_of(conn, incident.id), incident)


def _hearing(cards: Sequence[repo.CardRow], incident: Incident) -> list[int]:
    """The chats that hear of the incident: not those where it was silenced before its
    card was sent (nothing of it is shown there until the silence ends), nor those where a
    storm's digest holds it (the digest shows it instead)."""
    if not cards:
        return [incident.chat_id]
    return [c.chat_id for c in cards
            if not c.held and (c.message_id is not None or c.silence_id is None)]


def card_lane(incident: Incident, *, posted: bool) -> int:
    """An edit waits in the background lane; a card not posted yet in the new-cards lane,
    higher severity first (either way, the people lane while someone is waiting)."""
    if posted:
        return outbox.BACKGROUND
    return outbox.new_card_lane(severity_rank(incident.severity))


async def reply(
    conn: Conn, incident: Incident, kind: str, now: datetime, voice: Voice, **ctx: Any
) -> None:
    """The thread note `kind` (templates/<locale>/thread/), in every chat of the incident.

    Runs inside a transition's transaction: a note that cannot be rendered must not undo
    the state change it reports, so it becomes a short fallback text instead."""
    try:
        text = render(kind, voice, incident=incident, **ctx)
    except Exception:
        log.exception("thread note %r of %s cannot be rendered; sending the short form",
                      kind, incident.id)
        succeeded = ctx.get("succeeded")
        text = cards.render_note_fallback(
            kind, locale=voice.locale, incident=incident,
            succeeded=succeeded if isinstance(succeeded, bool) else None,
        )
    await reply_texts(conn, incident, [text], now, note=kind)


async def reply_texts(
    conn: Conn,
    incident: Incident,
    texts: Sequence[str],
    now: datetime,
    *,
    note: str,
    chat_id: int | None = None,
    keyboards: Sequence[list[list[dict[str, str]]]] = (),
) -> None:
    """Queue messages in the incident's thread: in `chat_id` only (an answer to
    whoever asked there), or else in every chat the incident lives in. `keyboards[i]`, when
    given, goes under `texts[i]`."""
    for chat in [chat_id] if chat_id is not None else await chats_of(conn, incident):
        for i, text in enumerate(texts):
            payload: dict[str, Any] = {"text": text, "note": note}
            if i < len(keyboards) and keyboards[i]:
                payload["keyboard"] = keyboards[i]
            await outbox.enqueue(
                conn, kind=outbox.REPLY, chat_id=chat, incident_id=incident.id, now=now,
                payload=payload,
            )


async def card_changed(conn: Conn, incident: Incident, now: datetime, *,
                       not_before: datetime | None = None) -> None:
    """Sync the incident's card in every chat it lives in. `not_before`: a new incident's
    first card waits for its proposal until then (`proposal_ready` ends the wait)."""
    cards = await repo.cards_of(conn, incident.id)
    posted = {c.chat_id for c in cards if c.message_id is not None}
    for chat_id in _hearing(cards, incident):
        # A card being posted right now will be there when this sync goes: it is an edit.
        is_edit = chat_id in posted or await outbox.card_in_flight(conn, incident.id, chat_id)
        await outbox.enqueue(
            conn, kind=outbox.CARD, chat_id=chat_id, incident_id=incident.id, now=now,
            not_before=not_before, lane=card_lane(incident, posted=is_edit),
        )
    # Where a storm's digest holds it, the digest shows what changed (the syncs queued
    # above change no card row), a little later: in a storm its incidents change at every
    # webhook, and each render reads every incident the digest lists.
    for card in cards:
        if card.held and card.digest_id is not None:
            await outbox.enqueue_digest(conn, card.digest_id, card.chat_id, now,
                                        settle=DIGEST_SETTLE)


async def proposal_ready(conn: Conn, incident: Incident) -> None:
    """The analysis has ended: a first card waiting for it goes now, with what it found."""
    await outbox.end_wait(conn, incident.id)
