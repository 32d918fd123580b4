"""A press's way to its answer, counted: the trips to a connection's thread and the turns of
the loop it waits for under load, and that each step it skips is still taken when needed
(another process holding SQLite's write lock, older updates still pending)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import Message
from factories import make_incident
from handler_session import RecordingSession
from pg import write_lock_held
from test_delivery_costs import count_trips

import bot.telegram.inbox as inbox_stage
from bot.telegram.inbox import Inbox, InboxWorker
from sandbox.emulator import wait_for
from storage import inbox, repo
from storage.db import Database

T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


async def test_a_write_begins_on_the_loops_thread_while_no_other_process_writes(
        sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    trips = count_trips(monkeypatch)
    async with sqlite_db.write() as conn:
        await repo.insert_incident(conn, make_incident())
    assert [fn.__name__ for fn in trips] == ["commit"]


async def test_a_write_waits_off_the_loop_while_another_process_holds_the_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(tmp_path / "locked.db", busy_timeout_ms=120_000)
    await db.open()
    try:
        trips = count_trips(monkeypatch)

        async def write() -> None:
            async with db.write() as conn:
                await repo.insert_incident(conn, make_incident())

        async with write_lock_held(str(db.target)):
            writing = asyncio.create_task(write())
            # The BEGIN waits on the connection's thread: this coroutine runs meanwhile.
            await wait_for(lambda: trips, 30)
            assert not writing.done()
        await writing
        assert [fn.__name__ for fn in trips] == ["execute", "commit"]
        async with db.read() as conn:
            assert await repo.get_incident(conn, make_incident().id) is not None
    finally:
        await db.close()


def _update(update_id: int) -> inbox.Received:
    chat = {"id": -100, "type": "supergroup", "title": "t"}
    return inbox.Received(update_id, {"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "chat": chat, "text": "/whoami"}}, T0)


async def test_an_update_stored_here_is_handled_without_reading_it_back(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbox_stage, "IDLE_POLL", 3600.0)  # no poll meanwhile
    reads: list[list[int]] = []
    pending = inbox.pending

    async def counting(conn: object, *args: object, **kwargs: object) -> list[inbox.InboxRow]:
        rows = await pending(conn, *args, **kwargs)  # type: ignore[arg-type]
        reads.append([r.update_id for r in rows])
        return rows

    monkeypatch.setattr(inbox, "pending", counting)
    seen: dict[int, int] = {}  # message id -> the reads made when its handler ran
    dp = Dispatcher()

    @dp.message()
    async def handled(message: Message) -> None:
        seen[message.message_id] = len(reads)

    box = Inbox(db, lambda: T0)
    bot = Bot("42:TEST", session=RecordingSession())
    worker = InboxWorker(db, dp, bot, lambda: T0)
    box.stored = worker.offer
    # Stored before the worker starts (a restart's backlog): found by its first read.
    await box.receive([_update(1)])
    worker.start()
    try:
        await wait_for(lambda: 1 in seen and not worker._in_flight, 30)
        assert reads[0] == [1]
        before = len(reads)
        await box.receive([_update(2), _update(3)])
        await wait_for(lambda: {2, 3} <= seen.keys() and not worker._in_flight, 30)
        assert seen[2] == seen[3] == before
        assert len(reads) == before  # nor afterwards: the inbox's wake was not needed
        async with db.read() as conn:
            assert await inbox.pending_count(conn) == 0
    finally:
        await worker.stop()
        await bot.session.close()
