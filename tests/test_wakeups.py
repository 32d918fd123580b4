"""A commit wakes the worker it concerns; a row committed elsewhere is found by polling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from factories import T0, make_incident

from bot.cards.notes import Voice
from bot.decisions.analysis import AnalysisWorker
from bot.models import Alert, DecisionState, Incident
from sandbox.emulator import wait_for
from storage import outbox, repo, transitions
from storage.backends import database_for
from storage.db import Database, Wake, wakes_held


def _events(db: Database) -> dict[Wake, object]:
    return {wake: db.wake_event(wake) for wake in Wake}


def _set(events: dict[Wake, object]) -> set[Wake]:
    return {wake for wake, event in events.items() if event.is_set()}  # type: ignore[attr-defined]


async def test_outbox_row_wakes_delivery_after_commit(db: Database) -> None:
    events = _events(db)
    async with db.write() as conn:
        await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=1, now=T0,
                             payload={"text": "hi"})
        assert _set(events) == set(), "woken before the row is visible"
    assert _set(events) == {Wake.DELIVERY}


async def test_new_decision_wakes_analysis_and_approval_wakes_execution(db: Database) -> None:
    events = _events(db)
    async with db.write() as conn:
        await repo.insert_incident(conn, make_incident())
        decision_id = await repo.insert_decision(conn, "INC-7K3F9Q", T0)
    assert _set(events) == {Wake.ANALYSIS}
    for event in events.values():
        event.clear()  # type: ignore[attr-defined]
    async with db.write() as conn:
        await transitions.compare_and_set(conn, decision_id, [DecisionState.ANALYZING],
                                          DecisionState.PENDING, T0)
    assert _set(events) == set()
    async with db.write() as conn:
        await transitions.compare_and_set(conn, decision_id, [DecisionState.PENDING],
                                          DecisionState.APPROVED, T0)
    assert _set(events) == {Wake.EXECUTION}


async def test_rolled_back_write_wakes_nobody(db: Database) -> None:
    events = _events(db)
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=1, now=T0)
            raise RuntimeError("handler failed")
    assert _set(events) == set()


class InvalidEngine:
    async def analyze(self, incident: Incident, alerts: list[Alert]) -> object:
        raise RuntimeError("no proposal")


async def test_decision_committed_by_another_process_is_found_by_polling(
    db: Database, tmp_path: Path
) -> None:
    worker = AnalysisWorker(db, InvalidEngine(), lambda: T0, Voice("en", "UTC"))
    worker.start()
    other = database_for(db.target)  # its own connections: its commits wake only it
    await other.open()
    try:
        async with other.write() as conn:
            await repo.insert_incident(conn, make_incident())
            decision_id = await repo.insert_decision(conn, "INC-7K3F9Q", T0)

        async def analysed() -> bool:
            async with db.read() as conn:
                decision = await repo.get_decision(conn, decision_id)
            return decision is not None and decision.state is DecisionState.INVALID

        await wait_for(analysed, 10, message="the poll did not find the decision")
    finally:
        await worker.stop()
        await other.close()


async def test_held_wakes_wait_until_the_press_is_answered(db: Database) -> None:
    """A press's commits wake delivery only once the press is answered; a task started
    within that commits later wakes its worker at once."""
    events = _events(db)

    async def later() -> None:
        await started.wait()
        async with db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=2, now=T0,
                                 payload={"text": "later"})

    started = asyncio.Event()
    with wakes_held():
        async with db.write() as conn:
            await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=1, now=T0,
                                 payload={"text": "hi"})
        assert _set(events) == set()
        task = asyncio.create_task(later())
    assert _set(events) == {Wake.DELIVERY}
    events[Wake.DELIVERY].clear()  # type: ignore[attr-defined]
    started.set()
    await task
    assert _set(events) == {Wake.DELIVERY}
