"""When a process becomes leader, before any of its workers runs: make what a crash (or the
last leader, which died or lost its lease) left behind safe. Never on a standby: what
looks left behind there may be the leader's work under way.

An execution cut short becomes failed with "outcome unknown" and is never run
again (side effects at most once). An incident accepted without its card gets
one. Decisions still `analyzing` or `approved` need nothing here: analysis and
execution find them on their first look at the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bot.cards import notes
from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from bot.models import DecisionState
from storage import repo
from storage.db import Database
from storage.repo.lease import Fence

log = logging.getLogger(__name__)

UNKNOWN_OUTCOME = {"ok": False, "error": "outcome unknown — check manually", "unknown": True}


async def recover(db: Database, clock: Callable[[], datetime], voice: Voice,
                  fence: Fence | None = None) -> None:
    now = clock()
    async with db.write() as conn:
        if fence is not None and not await fence(conn):
            return  # the lease was lost already: the next leader recovers
        for decision in await repo.decisions_in_state(conn, DecisionState.EXECUTING):
            if await transition(
                conn, decision.id, Event.OUTCOME_UNKNOWN, now, voice,
                fields={"result": UNKNOWN_OUTCOME},
                note={"succeeded": False, "unknown": True, "dry_run": False, "effect": None,
                      "output": "", "error": ""},
            ):
                log.error("decision %s of %s was executing at the last stop: marked failed",
                          decision.id, decision.incident_id)
        # Accepted, but a crash came before the card (the alert was answered 2xx).
        for inc in await repo.incidents_without_card(conn):
            await notes.card_changed(conn, inc, now)
