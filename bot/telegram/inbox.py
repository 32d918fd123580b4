"""Receiving Telegram updates: stored first, confirmed after, handled from the database.

    getUpdates (or the webhook) ─▶ inbox rows, one transaction per batch
      ─▶ only then the next getUpdates offset (or the webhook's 200): Telegram forgets them
      ─▶ InboxWorker: each pending row, in update_id order, to the Dispatcher; then done
     (rows this process just stored are handed over at once, without a read back)

A crash between Telegram's answer and the commit loses nothing: the batch was never
confirmed, so Telegram sends it again (a repeat of a recorded id is ignored). A crash between
the commit and the handler leaves the row pending, and the next start hands it over. The row
is marked done in the same transaction as the first change its handler makes (a press's
transition, a command's silence, a refusal's audit row), so a change is never made twice by
handing its update over again. Only an update whose handler changed nothing, or raised, is
marked after the handler returned; should the process die in between, it is handed over once
more, and the handlers' compare-and-set refuses what was already done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods.base import TelegramMethod
from aiogram.types import Update
from pydantic import ValidationError

from bot import faults
from bot.leadership import NotLeader
from bot.polling import wait_for_wake
from storage import inbox
from storage.db import (
    CommitWith,
    Database,
    StorageUnavailable,
    Wake,
    committing_with,
    wakes_held,
)
from storage.repo.lease import Fence
from storage.repo.sql import Conn

log = logging.getLogger(__name__)

POLL_TIMEOUT = 25  # seconds a getUpdates call waits for updates (Telegram's long poll)
IDLE_POLL = 1.0
CONCURRENCY = 16  # updates handled at once (a slow Telegram call must not hold up the rest)
STOP_GRACE = 5.0  # seconds a stop waits for handlers under way
FINISHED_KEPT = 4096  # ids of updates handled here, never started again by this process


class GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates, answered as the JSON objects Telegram sent: they are stored as sent."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


class Inbox:
    """Where both doors put what they receive."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        # Given the rows just committed; true when it took them all (the inbox worker, while
        # it runs here).
        self.stored: Callable[[list[inbox.InboxRow]], bool] | None = None

    async def receive(self, updates: Sequence[inbox.Received]) -> int:
        """Record a batch in one transaction; it may be confirmed once this returns.
        Raises StorageUnavailable when it cannot be stored (then it must not be confirmed)."""
        if not updates:
            return 0
        with wakes_held() as held:
            # Presses and commands are people waiting: this short write goes before webhooks.
            async with self.db.write(urgent=True) as conn:
                rows = await inbox.record(conn, updates, self.clock())
            if rows and self.stored is not None and self.stored(rows):
                held.drop()  # taken as they are: the worker need not read them back
        return len(rows)


def received(raw: Sequence[dict[str, Any]], queued_since: datetime
             ) -> tuple[list[inbox.Received], int | None]:
    """The updates of a getUpdates answer, and the offset that confirms all of them."""
    kept: list[inbox.Received] = []
    highest: int | None = None
    for body in raw:
        update_id = inbox.valid_update_id(body.get("update_id"))
        if update_id is None:
            log.error("Telegram sent an update without a usable update_id; skipped")
            continue
        kept.append(inbox.Received(update_id, body, queued_since))
        highest = update_id if highest is None else max(highest, update_id)
    return kept, None if highest is None else highest + 1


class Poller:
    """Long polling: a batch is recorded before the call that confirms it is made."""

    def __init__(self, bot: Bot, box: Inbox, allowed_updates: list[str],
                 timeout: int = POLL_TIMEOUT,
                 lease_left: Callable[[], float] | None = None) -> None:
        self.bot = bot
        self.inbox = box
        self.allowed_updates = allowed_updates
        self.timeout = timeout
        # Seconds before the leader's local deadline: a long poll ends before it, so the
        # next leader's first getUpdates never meets this one's (Telegram answers 409).
        self.lease_left = lease_left
        # None at start: Telegram then sends every update not yet confirmed, including any
        # this process recorded but could not confirm before it stopped.
        self.offset: int | None = None

    async def _fetch(self, wait: int) -> list[dict[str, Any]]:
        """One getUpdates call; `wait`: seconds Telegram may hold it open for updates."""
        if self.lease_left is not None:
            wait = max(0, min(wait, int(self.lease_left())))
        return await self.bot(
            GetRawUpdates(offset=self.offset, timeout=wait,
                          allowed_updates=self.allowed_updates),
            request_timeout=int(self.bot.session.timeout + wait),
        )

    async def _record(self, raw: list[dict[str, Any]], queued_since: datetime) -> None:
        batch, offset = received(raw, queued_since)
        await self.inbox.receive(batch)
        if offset is not None:
            self.offset = offset  # the next call confirms the batch, now that it is stored

    async def drain(self, queued_since: datetime) -> None:
        """At start-up: record what Telegram kept while the bot was away (and confirm it)."""
        while True:
            raw = await self._fetch(wait=0)
            if not raw:
                return
            await self._record(raw, queued_since)

    async def run(self, clock: Callable[[], datetime]) -> None:
        failures = 0
        while True:
            try:
                raw = await self._fetch(self.timeout)
                await self._record(raw, clock())
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                # Not confirmed: the same batch comes again on the next call.
                failures += 1
                log.error("polling: cannot store updates (%s); asking again", exc)
            except Exception as exc:
                failures += 1
                log.error("polling: getUpdates failed (%s: %s)", type(exc).__name__, exc)
            else:
                failures = 0
                if raw or self.lease_left is None or self.lease_left() >= 1:
                    continue
                # Under a second of lease left: the next renewal gives a long poll room.
                await asyncio.sleep(0.2)
                continue
            await asyncio.sleep(min(5.0, 0.25 * 2 ** min(failures, 5)))


class InboxWorker:
    """Hands pending updates to the Dispatcher in update_id order, several at once, and marks
    each done (or failed, when its handler raised) after its handler returned."""

    def __init__(self, db: Database, dp: Dispatcher, bot: Bot, clock: Callable[[], datetime],
                 *, concurrency: int = CONCURRENCY, fence: Fence | None = None) -> None:
        self.db = db
        # Checked where an update is marked handled: one that a process which lost the lease
        # was handling stays pending, for the leader.
        self.fence = fence
        self.dp = dp
        self.bot = bot
        self.clock = clock
        self.concurrency = concurrency
        self._wake = db.wake_event(Wake.INBOX)
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._finished: dict[int, None] = {}  # recently handled here, oldest first
        # Whether the last read may have left older pending rows untaken (no room): then a
        # row just stored waits for the read, in update_id order, instead of going first.
        self._behind = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._behind = True
        self._task = asyncio.create_task(self._run(), name="inbox")

    def offer(self, rows: list[inbox.InboxRow]) -> bool:
        """Rows this process has just committed: handled at once, without the read back (a
        turn of the loop and a trip to the shared reader, which a press waited for). False
        when some are left for the read: not leading, older rows first, or no room."""
        if self._task is None or self._behind:
            return False
        self._start_rows(rows)
        return not self._behind

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Take nothing new; let the handlers under way finish (at most `grace` seconds).
        One cut short is still pending and is handed over again at the next start."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        running = list(self._in_flight.values())
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a commit meanwhile wakes the wait
            try:
                await self._take()
            except StorageUnavailable as exc:
                log.error("inbox: database unavailable: %s", exc)
            except Exception:
                log.exception("inbox: unexpected error; continuing")
            await wait_for_wake(self._wake, IDLE_POLL)

    async def _take(self) -> None:
        if self.concurrency - len(self._in_flight) <= 0:
            self._behind = True
            return
        async with self.db.read() as conn:
            rows = await inbox.pending(conn, limit=100 + len(self._in_flight))
        self._start_rows(rows)

    def _start_rows(self, rows: list[inbox.InboxRow]) -> None:
        """Start the rows' handlers in order, as far as there is room."""
        room = self.concurrency - len(self._in_flight)
        self._behind = False
        for row in rows:
            # The read may predate the done mark of an update handled meanwhile (the read
            # connection is shared, and its snapshot can be older than the last commit).
            if row.update_id in self._in_flight or row.update_id in self._finished:
                continue
            if room <= 0:
                self._behind = True
                break
            room -= 1
            task = asyncio.create_task(self._handle(row), name=f"update-{row.update_id}")
            self._in_flight[row.update_id] = task

    async def _handle(self, row: inbox.InboxRow) -> None:
        try:
            # Marked done in the handler's first write transaction, so the change a press
            # makes and "handled" commit together; a handler that wrote nothing (or raised)
            # is marked after it returned.
            along = CommitWith(lambda conn: self._mark_done(conn, row.update_id))
            try:
                with committing_with(along):
                    error = await self._feed(row)
            except NotLeader as exc:
                if not along.committed:
                    log.warning("inbox: update %s left for the leader (%s)", row.update_id, exc)
                    return
                error = None  # handled and marked; only its answer could not go out
            faults.point("inbox.handled")
            if error is not None or not along.committed:
                await self._settle(row.update_id, error)
            self._finished[row.update_id] = None
            while len(self._finished) > FINISHED_KEPT:
                del self._finished[next(iter(self._finished))]
        finally:
            self._in_flight.pop(row.update_id, None)
            if self._behind:
                self._wake.set()  # room for the next one

    async def _mark_done(self, conn: Conn, update_id: int) -> None:
        if self.fence is not None and not await self.fence(conn):
            raise NotLeader("the lease was lost while the update was handled")
        await inbox.mark_done(conn, update_id, self.clock())

    async def _feed(self, row: inbox.InboxRow) -> str | None:
        """Run the update's handlers; the error that made it fail, or None. A handler that
        raised is not run again: it may have committed part of its work (a command is no
        compare-and-set), so the update is kept as failed, with the error, and logged."""
        faults.point("inbox.recorded")
        try:
            update = Update.model_validate(row.body, context={"bot": self.bot})
        except ValidationError as exc:
            log.error("inbox: update %s is not a Telegram update: %s", row.update_id, exc)
            return f"not an update: {exc}"
        try:
            await self.dp.feed_update(self.bot, update, update_age=self.clock() - row.queued_since)
        except NotLeader:
            raise
        except Exception as exc:
            log.exception("inbox: handling update %s failed", row.update_id)
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _settle(self, update_id: int, error: str | None) -> None:
        """Mark the row handled; until that sticks it stays in flight, never handed over twice
        by this process."""
        delay = 0.5
        while True:
            try:
                async with self.db.write() as conn:
                    now = self.clock()
                    if self.fence is not None and not await self.fence(conn):
                        return  # left pending for the leader
                    if error is None:
                        await inbox.mark_done(conn, update_id, now)
                    else:
                        await inbox.mark_failed(conn, update_id, now, error)
                return
            except StorageUnavailable as exc:
                log.error("inbox: cannot mark update %s handled (%s); retrying", update_id, exc)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

