"""The inbox table: what is kept of an update, repeats, sizes, and how long."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from bot.retention import Retention, prune
from storage import inbox
from storage.db import CommitWith, Database, committing_with

T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


def _update(update_id: int, text: str = "/whoami") -> inbox.Received:
    return inbox.Received(update_id, {"update_id": update_id, "message": {"text": text}}, T0)


async def _record(db: Database, *updates: inbox.Received, now: datetime = T0) -> int:
    async with db.write() as conn:
        return len(await inbox.record(conn, updates, now))


async def _pending(db: Database) -> list[int]:
    async with db.read() as conn:
        return [row.update_id for row in await inbox.pending(conn)]


async def test_a_repeat_of_a_recorded_update_is_the_same_row(db: Database) -> None:
    assert await _record(db, _update(7), _update(5)) == 2
    assert await _record(db, _update(5, "changed"), _update(8)) == 1
    assert await _pending(db) == [5, 7, 8]
    async with db.read() as conn:
        (five, *_) = await inbox.pending(conn)
    assert five.body["message"]["text"] == "/whoami"  # the first copy is the one kept
    async with db.write() as conn:
        await inbox.mark_done(conn, 5, T0)
    assert await _record(db, _update(5)) == 0  # handled: a repeat is not handled again
    assert await _pending(db) == [7, 8]


async def test_an_id_handled_long_ago_is_a_new_update(db: Database) -> None:
    """Telegram numbers on from a random id after a week without updates."""
    await _record(db, _update(5))
    async with db.write() as conn:
        await inbox.mark_done(conn, 5, T0)
    later = T0 + inbox.REUSED_AFTER + timedelta(seconds=1)
    assert await _record(db, _update(5, "new"), now=later) == 1
    async with db.read() as conn:
        (row,) = await inbox.pending(conn)
    assert row.body["message"]["text"] == "new"


async def test_an_oversized_update_is_kept_as_failed_and_holds_nothing_up(db: Database) -> None:
    huge = "x" * (inbox.MAX_BODY_BYTES + 1)
    await _record(db, _update(1, huge), _update(2))
    assert await _pending(db) == [2]
    async with db.read() as conn:
        assert await inbox.counts(conn) == {"failed": 1, "pending": 1}


async def test_a_lone_surrogate_is_stored_and_read_back(db: Database) -> None:
    await _record(db, _update(1, "a\ud800b"))
    async with db.read() as conn:
        (row,) = await inbox.pending(conn)
    assert row.body["message"]["text"] == "a\ud800b"


async def test_handled_updates_are_pruned_after_a_day_pending_ones_never(db: Database) -> None:
    await _record(db, _update(1), _update(2), _update(3))
    async with db.write() as conn:
        await inbox.mark_done(conn, 1, T0)
        await inbox.mark_failed(conn, 2, T0, "boom")
    keep = Retention(resolved_incidents=timedelta(0), audit=timedelta(0),
                     delivered_outbox=timedelta(0))
    assert (await prune(db, keep, T0 + timedelta(hours=23)))["inbox"] == 0
    assert (await prune(db, keep, T0 + timedelta(days=1, seconds=1)))["inbox"] == 2
    assert await _pending(db) == [3]


async def test_done_commits_with_the_first_write_that_commits_and_only_then(
    db: Database,
) -> None:
    await _record(db, _update(1))
    along = CommitWith(lambda conn: inbox.mark_done(conn, 1, T0))
    with committing_with(along):
        with contextlib.suppress(RuntimeError):
            async with db.write() as conn:
                await conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
                raise RuntimeError("the handler's transaction rolls back")
        assert not along.committed and await _pending(db) == [1]
        async with db.write() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")
        assert along.committed and await _pending(db) == []
        async with db.write() as conn:  # a later write does not do it again
            await conn.execute("INSERT INTO meta (key, value) VALUES ('c', '3')")
    async with db.read() as conn:
        assert await inbox.counts(conn) == {"done": 1}
