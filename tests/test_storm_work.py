"""What a storm's digest costs does not follow the number of incidents it holds: the
delivery worker's look for held incidents that need their own card costs the same at 50 and
5,000 (counted, not timed: SQLite VM steps, with and without an urgent one among them), and
the changes of its incidents share one render instead of one render each.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from bot.cards.notes import DIGEST_SETTLE
from storage import outbox
from storage.db import Database
from storage.repo import digests
from storage.repo.sql import Conn, fetch_all

CHAT = -1001
NOW = "2026-01-01T00:00:00+00:00"
CALM = json.dumps({"action": {"kind": "restart"}, "risk": "low"})
RISKY = json.dumps({"action": {"kind": "restart"}, "risk": "high"})


@asynccontextmanager
async def storm_of(tmp: Path, size: int) -> AsyncIterator[tuple[Database, int]]:
    """A database whose open digest holds `size` warning incidents, each with a decision
    waiting for people at low risk."""
    db = Database(tmp / f"storm{size}.db")
    await db.open()
    try:
        async with db.write() as conn:
            digest_id = await digests.start_digest(conn, CHAT, datetime.fromisoformat(NOW), 0.0)
            for n in range(size):
                await incident(conn, f"INC-{n:06d}", digest_id, severity="warning",
                               proposal=CALM)
        yield db, digest_id
    finally:
        await db.close()


async def incident(conn: Conn, incident_id: str, digest_id: int, *, severity: str,
                   proposal: str, held: bool = True) -> None:
    await conn.execute(
        """INSERT INTO incidents (id, group_key, group_labels, title, alertname, severity,
               target, namespace, status, firing_count, resolved_count, opened_at, updated_at,
               chat_id)
           VALUES (?, ?, '{}', 'pods down', 'PodDown', ?, 'api', 'prod', 'firing', 1, 0, ?, ?,
               ?)""",
        (incident_id, incident_id, severity, NOW, NOW, CHAT))
    await conn.execute(
        "INSERT INTO decisions (incident_id, state, proposal, created_at, updated_at)"
        " VALUES (?, 'pending', ?, ?, ?)", (incident_id, proposal, NOW, NOW))
    await conn.execute(
        "INSERT INTO cards (incident_id, chat_id, digest_id, held) VALUES (?, ?, ?, ?)",
        (incident_id, CHAT, digest_id, int(held)))


async def steps_of_look(db: Database) -> tuple[int, list[int]]:
    """VM steps of one waiting_urgent() on the writer, and the digests it names."""
    writer = db._require(db._writer)
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    await writer.set_progress_handler(step, 1)
    try:
        async with db.write() as conn:
            found = [d.id for d in await digests.waiting_urgent(conn)]
    finally:
        await writer.set_progress_handler(None, 1)  # type: ignore[arg-type]  # None removes it
    return steps, found


async def test_the_look_for_urgent_held_incidents_costs_the_same_at_50_and_5000(
        tmp_path: Path) -> None:
    calm: dict[int, int] = {}
    urgent: dict[int, int] = {}
    for size in (50, 5000):
        async with storm_of(tmp_path, size) as (db, digest_id):
            calm[size], found = await steps_of_look(db)
            assert found == []  # nothing critical, nothing risky: no digest waits
            async with db.write() as conn:
                await incident(conn, "INC-CRIT", digest_id, severity="critical",
                               proposal=CALM)
                await incident(conn, "INC-RISK", digest_id, severity="warning",
                               proposal=RISKY)
                # Urgent but not held (it has its own card): not what the look is for.
                await incident(conn, "INC-OWN", digest_id, severity="critical",
                               proposal=RISKY, held=False)
            urgent[size], found = await steps_of_look(db)
            assert found == [digest_id]
            async with db.write() as conn:
                await conn.execute("UPDATE cards SET held = 0 WHERE incident_id = 'INC-CRIT'")
            _, found = await steps_of_look(db)
            assert found == [digest_id]  # the risky decision alone still makes it wait
            async with db.write() as conn:
                await conn.execute("UPDATE decisions SET proposal = ? WHERE incident_id = ?",
                                   (CALM, "INC-RISK"))
            _, found = await steps_of_look(db)
            assert found == []
    print(f"\nwaiting_urgent VM steps, 50 / 5,000 held: calm {calm[50]} / {calm[5000]}, "
          f"with urgent ones {urgent[50]} / {urgent[5000]}")
    # Before the partial indexes the look walked every held card: 100 times the steps.
    assert abs(calm[5000] - calm[50]) <= 20, calm
    assert abs(urgent[5000] - urgent[50]) <= 20, urgent


async def test_changes_of_held_incidents_gather_into_one_render(tmp_path: Path) -> None:
    """In a storm a held incident changes at every webhook, and each render of the digest
    reads every incident it lists: the changes within DIGEST_SETTLE share one render, while
    a render someone asked for (a page press) or one with new incidents is due at once."""
    at = datetime.fromisoformat(NOW)

    async def queued(db: Database) -> list[float]:
        async with db.read() as conn:
            rows = await fetch_all(
                conn,
                "SELECT next_attempt_at FROM outbox WHERE kind = 'digest' AND state = 'pending'")
        return [r[0] for r in rows]

    async with storm_of(tmp_path, 3) as (db, digest_id):
        for _ in range(50):  # fifty changes of its incidents
            async with db.write() as conn:
                await outbox.enqueue_digest(conn, digest_id, CHAT, at, settle=DIGEST_SETTLE)
        assert await queued(db) == [at.timestamp() + DIGEST_SETTLE]
        async with db.write() as conn:  # a page press: the same render, due now
            await outbox.enqueue_digest(conn, digest_id, CHAT, at)
        assert await queued(db) == [at.timestamp()]
        async with db.write() as conn:  # a change after it does not push it back
            await outbox.enqueue_digest(conn, digest_id, CHAT, at, settle=DIGEST_SETTLE)
        assert await queued(db) == [at.timestamp()]
        async with db.write() as conn:  # new incidents to show: first in its lane
            await outbox.enqueue_digest(conn, digest_id, CHAT, at, showing=2)
        assert await queued(db) == [0.0]
