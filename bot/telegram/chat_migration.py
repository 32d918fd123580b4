"""A group upgraded to a supergroup: move every pending write and open card there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.alerts.routing import RouteTable
from bot.cards import notes
from bot.cards.command_text import fit_one
from storage import outbox, repo
from storage.db import Database

log = logging.getLogger(__name__)


def render_migrated(*, old_chat_id: int, new_chat_id: int, tz: ZoneInfo, locale: str = "en") -> str:
    """Posted in the new supergroup after the group was upgraded (chat id changed)."""
    return fit_one("migrated", locale, tz, old_chat_id=old_chat_id, new_chat_id=new_chat_id)


class ChatMigrator:
    def __init__(self, db: Database, clock: Callable[[], datetime], routes: RouteTable,
                 locale: str, tz_name: str) -> None:
        self.db = db
        self.clock = clock
        self.routes = routes
        self.locale = locale
        self.tz_name = tz_name

    async def load(self) -> None:
        """At start-up: a config that still names an old id keeps working."""
        async with self.db.read() as conn:
            for old, new in await repo.migrations(conn):
                self.routes.remap_chat(old, new)

    async def migrate(self, old: int, new: int) -> None:
        now = self.clock()
        async with self.db.write() as conn:
            first = await repo.record_migration(conn, old, new, now)
            reposted = await repo.move_chat(conn, old, new)
            for incident_id in reposted:
                inc = await repo.get_incident(conn, incident_id)
                card = await repo.get_card(conn, incident_id, new)
                if inc is not None and not (card and card.silence_id):
                    await notes.card_changed(conn, inc, now)
            if first:
                text = render_migrated(old_chat_id=old, new_chat_id=new,
                                       tz=ZoneInfo(self.tz_name), locale=self.locale)
                await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=new, now=now,
                                     payload={"text": text})
        self.routes.remap_chat(old, new)
        if first:
            log.warning(
                "chat %s is now supergroup %s: %d open card(s) posted again there; "
                "update TELEGRAM_CHAT_ID / ROUTES_PATH to the new id", old, new, len(reposted),
            )
