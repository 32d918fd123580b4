"""What a card's way to Telegram costs, counted: the answer types the Bot API client
builds, the trips a query makes to its connection's thread (none for a card's own reads),
and the reads a slow search could hold up."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from factories import UTC_TZ, make_incident
from harness import CHAT, settings_for
from pydantic._internal import _generics

from bot.telegram.card_loading import card_renderer
from bot.telegram.client import build_bot
from sandbox.server import RunningEmulator
from storage import repo
from storage.db import Database
from storage.repo.sql import fetch_all, fetch_one


@pytest.fixture
def db(sqlite_db: Database) -> Database:
    """What this file counts (trips to aiosqlite's connection threads) is SQLite's alone."""
    return sqlite_db


async def test_an_answer_type_is_built_once_not_after_every_collection(
        emu: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = _generics.create_generic_submodel

    def counting(name: str, *args: Any) -> Any:
        built.append(name)
        return original(name, *args)

    monkeypatch.setattr(_generics, "create_generic_submodel", counting)
    bot = build_bot(settings_for(emu, tmp_path / "x.db"))
    try:
        await bot.send_message(chat_id=CHAT, text="first")
        first = len(built)
        for n in range(3):
            gc.collect()  # a busy process collects between most calls
            await bot.send_message(chat_id=CHAT, text=f"again {n}")
    finally:
        await bot.session.close()
    assert built[first:] == []


def count_trips(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """Every call sent to a connection's own thread from now on."""
    trips: list[Callable[..., Any]] = []
    queued = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any,
                       **kwargs: Any) -> Any:
        if not getattr(self, "inline", False):  # inline connections run calls right here
            trips.append(fn)
        return await queued(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    return trips


async def test_a_query_is_one_trip_to_the_connection_thread(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    trips = count_trips(monkeypatch)
    async with db.read() as conn:
        assert await fetch_one(conn, "SELECT 1") is not None
        assert len(trips) == 1
        assert len(await fetch_all(conn, "SELECT 1 UNION SELECT 2")) == 2
        assert len(trips) == 2


async def test_a_slow_read_does_not_hold_up_the_other_reads(db: Database) -> None:
    release = threading.Event()

    def held() -> int:
        release.wait(30)  # the search's thread is busy until the test lets it go
        return 1

    async with db.read(slow=True) as slow:
        await slow.create_function("held", 0, held)
        search = asyncio.create_task(fetch_one(slow, "SELECT held()"))
        try:
            async with db.read() as conn:
                row = await asyncio.wait_for(fetch_one(conn, "SELECT 2"), 20)
            assert row is not None and row[0] == 2
            assert not search.done()
        finally:
            release.set()
        assert (await search) is not None


async def test_an_inline_read_makes_no_trip_and_sees_the_last_commit(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    async with db.write() as conn:
        await repo.insert_incident(conn, make_incident())
    trips = count_trips(monkeypatch)
    async with db.read(inline=True) as conn:
        row = await fetch_one(conn, "SELECT COUNT(*) FROM incidents")
        assert row is not None and row[0] == 1
        inc = await repo.get_incident(conn, make_incident().id)
    assert inc is not None
    assert trips == []


async def test_loading_a_card_makes_no_trip_to_a_thread(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load each trip waits a turn of the event loop: a card's dozen reads were most
    of its way from the outbox to Telegram."""
    inc = make_incident(chat_id=CHAT)
    async with db.write() as conn:
        await repo.insert_incident(conn, inc)
    render = card_renderer(db, UTC_TZ, "en")
    trips = count_trips(monkeypatch)
    card = await render(inc.id, CHAT)
    assert card is not None and "cart" in card.text
    assert trips == []
