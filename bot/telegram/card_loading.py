"""Stored state -> CardView -> rendered card (and a storm's digest), for the delivery
worker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

from bot.cards.card import Card, CardView, render_card
from bot.cards.digest import DigestView, render_digest
from bot.telegram.card_sync import CardRenderer
from storage import repo
from storage.db import Database
from storage.repo import digests


async def load_view(db: Database, incident_id: str, chat_id: int, tz: ZoneInfo, locale: str
                    ) -> CardView | None:
    """Everything the card in this chat shows, from SQLite only (no clock: an ended silence
    is lifted, and the card re-rendered, by the silence sweep that clears cards.silence_id)."""
    async with db.read(inline=True) as conn:  # by key (and the alerts, which the loop
        # converts anyway): no trip to a thread per query
        inc = await repo.get_incident(conn, incident_id)
        if inc is None:
            return None
        alerts = await repo.alerts_of(conn, incident_id)
        decision = await repo.current_decision(conn, incident_id)
        approvals = await repo.approvals_of(conn, decision.id) if decision else []
        effect = (await repo.decision_extras(conn, decision.id))[0] if decision else None
        card = await repo.get_card(conn, incident_id, chat_id)
        quiet = card.silence_id if card else None
        silence = await repo.get_silence(conn, quiet) if quiet else None
        truncated = await repo.incident_truncated(conn, incident_id)
    return CardView(
        incident=inc, alerts=alerts, decision=decision, approvals=approvals, silence=silence,
        effect=effect, tz=tz, locale=locale, truncated_alerts=truncated,
    )


def card_renderer(db: Database, tz: ZoneInfo, locale: str) -> CardRenderer:
    async def render(incident_id: str, chat_id: int, *, url_buttons: bool = True
                     ) -> Card | None:
        view = await load_view(db, incident_id, chat_id, tz, locale)
        if view is None:
            return None
        return render_card(replace(view, url_buttons=url_buttons))

    return render


async def load_digest(db: Database, digest_id: int, tz: ZoneInfo, locale: str
                      ) -> DigestView | None:
    async with db.read() as conn:
        digest = await digests.get_digest(conn, digest_id)
        if digest is None:
            return None
        entries = await digests.entries(conn, digest_id)
    return DigestView(digest, entries, tz, locale)


def digest_renderer(db: Database, tz: ZoneInfo, locale: str
                    ) -> Callable[[int], Awaitable[tuple[digests.DigestRow, Card] | None]]:
    async def render(digest_id: int) -> tuple[digests.DigestRow, Card] | None:
        view = await load_digest(db, digest_id, tz, locale)
        return None if view is None else (view.digest, render_digest(view))

    return render
