"""The audit trail: who did what, when, where, and what came of it.

Every press and command that could change something leaves a row, refusals
included, written in the caller's transaction with the change it reports.
"""

from __future__ import annotations

from datetime import datetime

from bot.models import Actor
from storage import repo
from storage.db import Database
from storage.repo import Conn


async def record(
    conn: Conn,
    now: datetime,
    action: str,
    result: str,
    *,
    actor: Actor | None = None,
    incident_id: str | None = None,
    decision_id: int | None = None,
    detail: str | None = None,
) -> None:
    """One audit row. No actor: the bot itself (timers, analysis, execution)."""
    await repo.audit(
        conn, action=action, result=result, now=now,
        user_id=actor.user_id if actor else None, user_name=actor.name if actor else None,
        chat_id=actor.chat_id if actor else None, incident_id=incident_id,
        decision_id=decision_id, detail=detail,
    )


async def write(
    db: Database,
    now: datetime,
    action: str,
    result: str,
    *,
    actor: Actor | None = None,
    incident_id: str | None = None,
    decision_id: int | None = None,
    detail: str | None = None,
) -> None:
    """One audit row in a transaction of its own: a press or command that changed
    nothing else (a refusal, an unknown button)."""
    async with db.write() as conn:
        await record(conn, now, action, result, actor=actor, incident_id=incident_id,
                     decision_id=decision_id, detail=detail)
