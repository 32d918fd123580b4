"""The outbox worker: the only writer to Telegram (answerCallbackQuery aside).

Failures are sorted once, here: 429 waits `retry_after` (and holds the whole
chat), 5xx and network errors back off, a permanent 4xx is parked with a loud
log line and never blocks other writes. "message is not modified" counts as
success, and a card whose rendered digest equals the last one sent is not
sent at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramMigrateToChat,
    TelegramRetryAfter,
)

from bot import faults, logs
from bot.leadership import NotLeader
from bot.metrics import Metrics
from bot.polling import wait_for_wake
from bot.telegram import sending
from bot.telegram.card_sync import CardRenderer, CardSync, Topics
from bot.telegram.failures import Failure, Permanent, sort_failure
from bot.telegram.pacing import PacedSession, Pacer
from bot.telegram.storm import DigestRenderer, DigestSync, Storm
from storage import outbox
from storage.db import Database, StorageUnavailable, Wake
from storage.repo.lease import Fence
from storage.repo.sql import Conn

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
IDLE_POLL = 1.0  # picks up rows written by another process on the same database
DUE_BATCH = 16  # rows read per look; the chats that may not go now are left out of it
STOP_GRACE = 5.0  # seconds a stop waits for the write on the wire (a container gets ~10)
YIELD_AT_MOST = 1.0  # seconds analysis waits, at most, for the cards due before it
TURN_AT_MOST = 0.1  # seconds a webhook batch waits, at most, for the due cards to go first
TURN_ROWS = 2  # rows a webhook batch waits for, at most, while cards are due

SentHook = Callable[[outbox.OutboxItem, int], Awaitable[None]]
MigrateHook = Callable[[int, int], Awaitable[None]]


async def people_are_waiting(handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
                             event: Any, data: dict[str, Any]) -> Any:
    """Dispatcher outer middleware: what a press or a command queues is someone's answer,
    so it goes in the people lane, ahead of any backlog."""
    with outbox.people_waiting():
        return await handler(event, data)


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        bot: Bot,
        render_card: CardRenderer,
        *,
        max_attempts: int = 20,
        on_sent: SentHook | None = None,
        topics: Topics | None = None,
        on_migrate: MigrateHook | None = None,
        pacer: Pacer | None = None,
        metrics: Metrics | None = None,
        storm: Storm | None = None,
        render_digest: DigestRenderer | None = None,
        fence: Fence | None = None,
    ) -> None:
        # Checked in the transaction of every claim: only the leader's claims stick.
        self.fence = fence
        self.pacer = pacer
        if pacer is not None:
            bot.session.middleware(PacedSession(pacer))
        self._writes_before = 0  # the pacer's write count when the current row started
        # (chat, people lane) -> until when pacing keeps its rows back
        self._paced: dict[tuple[int, bool], float] = {}
        self.topics = topics
        self.on_migrate = on_migrate
        self.db = db
        self.bot = bot
        self.render_card = render_card
        self.max_attempts = max_attempts
        self.on_sent = on_sent
        self.metrics = metrics or Metrics()
        self._wake = db.wake_event(Wake.DELIVERY)  # set by commits that queue rows
        self._chat_hold: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._caught_up = True  # the last look found nothing people or a new card wait for
        # Set (and cleared) at each look at the due rows and as each row is done.
        self._progress = asyncio.Event()
        self._looks = 0
        self._rows_done = 0
        self._on_wire: outbox.OutboxItem | None = None  # claimed, its call not yet recorded
        self.cards = CardSync(db, bot, render_card, topics, self.metrics)
        self.storm = storm
        self.digests = DigestSync(db, bot, render_digest) if render_digest else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._stopping = False
        self._progress.clear()
        self._task = asyncio.create_task(self._run(), name="delivery")

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Claim nothing more; let the write on the wire finish and record its result, so
        no row is left 'sending' (which the next start would send again). Only a call still
        unanswered after `grace` seconds is cut short; its row goes back to pending."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._caught_up = True
        self._progress.set()
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
        item = self._on_wire  # read before the task's own clean-up forgets it
        await asyncio.gather(task, return_exceptions=True)
        if item is not None:
            log.warning("delivery: stopped while %s was on the wire; it goes again at the "
                        "next start (it may be shown twice)", _what(item))
            async with self.db.write() as conn:
                # A process that lost the lease leaves it to the new leader's recovery.
                if await self._fenced(conn):
                    await outbox.release(conn, item.id,
                                         "stopped while the call was on the wire")

    async def caught_up(self) -> None:
        """Return once nothing that people or a new card wait for is due here (at most after
        YIELD_AT_MOST): work nobody watches (analysis) waits for it, so that in a storm it
        does not hold up the cards. Rows pacing holds back do not count."""
        await self._until_caught_up(YIELD_AT_MOST)

    async def turn(self) -> None:
        """The same for a batch of webhooks, but only until TURN_ROWS more rows are sent (at
        most TURN_AT_MOST): ingestion and delivery share one event loop, and a run of
        webhooks would otherwise leave the cards it creates no turn to go out; a batch's
        new cards are fewer than the rows it waits for, so a backlog shrinks, and ingestion
        is not held for all of it."""
        await self._until_caught_up(TURN_AT_MOST, TURN_ROWS)

    async def _until_caught_up(self, at_most: float, rows: int | None = None) -> None:
        if self._task is None:
            return
        # A commit that woke the worker may have queued a card: only a look after it counts.
        looked = self._looks + (1 if self._wake.is_set() else 0)
        enough: int | None = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                while True:
                    if self._looks >= looked:
                        if self._caught_up:
                            return
                        if rows is not None:
                            if enough is None:
                                enough = self._rows_done + rows
                            elif self._rows_done >= enough:
                                return
                    await self._progress.wait()

    async def _fenced(self, conn: Conn) -> bool:
        return self.fence is None or await self.fence(conn)

    async def _run(self) -> None:
        # This worker runs only while its process leads: what the last leader (or this
        # process, before it stepped down) left 'sending' goes again.
        async with self.db.write() as conn:
            released = await outbox.release_stuck(conn) if await self._fenced(conn) else 0
        if released:
            log.warning("delivery: %d writes were in flight when the last run died; sending "
                        "again (a message among them may be shown twice)", released)
        if self.pacer is not None:
            # What was sent before this start counts against the limits as much as what
            # this process is about to send.
            async with self.db.read() as conn:
                self.pacer.seed(await outbox.recent_writes(
                    conn, time.time() - self.pacer.limits.horizon))
        while not self._stopping:
            self._wake.clear()  # before looking: a row committed meanwhile wakes the wait
            self._caught_up = False  # until the look tells
            try:
                worked = await self.run_once()
            except StorageUnavailable as exc:
                log.error("delivery: database unavailable: %s", exc)
                worked = False
            except Exception:
                log.exception("delivery: unexpected error; continuing")
                worked = False
            if worked:
                continue
            self._caught_up = True
            timeout = IDLE_POLL
            async with self.db.read() as conn:
                nxt = await outbox.next_due(conn)
            if nxt is not None:
                at = nxt.at
                # Due rows left out for a 429 hold or for pacing wait until their chat may go.
                unblocked = self._unblocked_at(time.time())
                if at <= time.time() and unblocked is not None:
                    at = unblocked
                timeout = max(0.0, min(IDLE_POLL, at - time.time()))
                if nxt.waiting and timeout > 0:
                    faults.point("delivery.waiting")
            await wait_for_wake(self._wake, timeout)

    async def run_once(self) -> bool:
        """Process what is due now. True if anything was attempted, or held back (the rows
        behind it, left out of this look, may go: look again)."""
        now = time.time()
        blocked = self._blocked(now)
        items = await self._due(now, blocked)
        # After looking, so it sees every row just read (a new card committed in between would
        # otherwise go out unseen, ahead of the lanes below it); what it holds back or
        # releases is looked at again.
        if self.storm is not None and await self.storm.sweep():
            items = await self._due(now, blocked)
        self._caught_up = all(item.lane >= outbox.BACKGROUND for item in items)
        self._looks += 1
        self._progressed()
        worked = False
        claimed: outbox.OutboxItem | None = None  # in the last row's done transaction
        for i, item in enumerate(items):
            if self._stopping and claimed is not item:
                break
            if claimed is not item:
                wait = self._wait_for(item)
                if wait > 0:
                    self._block(item, time.time() + wait)
                    worked = True
                    continue
                async with self.db.write(urgent=True) as conn:
                    if not await self._fenced(conn):
                        break  # not the leader (any more): claim nothing
                    if not await outbox.claim(conn, item.id):
                        continue
            self._on_wire = item  # 'sending' is committed before the call goes out
            worked = True
            following = items[i + 1] if i + 1 < len(items) else None
            try:
                faults.point("delivery.claimed")
                claimed = await self._process(item, following)
            except NotLeader:
                # The lease ran out between the claim and the call: the row stays 'sending'
                # for the recovery of whoever leads next (this process too, later).
                log.warning("delivery: %s not sent: this process no longer leads",
                            _what(item))
                return False
            finally:
                self._on_wire = None
                self._rows_done += 1
                self._progressed()
            if claimed is None and self._wake.is_set():
                break  # rows were queued meanwhile: they may be in a better lane
        return worked

    async def _due(self, now: float, blocked: outbox.Blocked) -> list[outbox.OutboxItem]:
        # A few rows at a time, read on this thread: under a storm every commit wakes the
        # worker, and each look must cost little next to the send it leads to.
        async with self.db.read(inline=True) as conn:
            return await outbox.due(conn, now, DUE_BATCH, blocked)

    def _progressed(self) -> None:
        self._progress.set()
        self._progress.clear()

    def _blocked(self, now: float) -> outbox.Blocked:
        """The chats that may not be written to now (a 429 hold, pacing): left out of the
        due query until `_unblocked_at`."""
        self._paced = {k: t for k, t in self._paced.items() if t > now}
        return outbox.Blocked(
            held=frozenset(c for c, until in self._chat_hold.items() if until > now),
            paced=frozenset(c for c, people in self._paced if people),
            paced_unhurried=frozenset(c for c, people in self._paced if not people))

    def _unblocked_at(self, now: float) -> float | None:
        """The earliest time a chat left out of the due query may be written to again."""
        return min((t for t in (*self._chat_hold.values(), *self._paced.values()) if t > now),
                   default=None)

    def _block(self, item: outbox.OutboxItem, until: float) -> None:
        """`item`'s chat may not be written to before `until` (its lane's pacing or a hold)."""
        key = (item.chat_id, item.lane == outbox.PEOPLE)
        self._paced[key] = max(self._paced.get(key, 0.0), until)

    def _wait_for(self, item: outbox.OutboxItem) -> float:
        """Seconds before a row may go: a 429 hold on its chat, or pacing."""
        wait = self._chat_hold.get(item.chat_id, 0.0) - time.time()
        if self.pacer is not None and item.kind != outbox.COMMANDS:
            wait = max(wait, self.pacer.delay(item.chat_id, _writes_needed(item),
                                              people=item.lane == outbox.PEOPLE))
        return max(0.0, wait)

    def _writes(self) -> outbox.Writes:
        """What the current row has written to its chat so far."""
        if self.pacer is None:
            return outbox.Writes()
        count = self.pacer.writes - self._writes_before
        return outbox.Writes(count, time.time() if count else None)

    # ------------------------------------------------------------ one row

    async def _process(self, item: outbox.OutboxItem, following: outbox.OutboxItem | None
                       ) -> outbox.OutboxItem | None:
        """Send `item`; `following` (the next due row) is claimed in the transaction that
        marks `item` sent when it may go then. The row claimed, if any."""
        with logs.about(incident_id=item.incident_id):
            return await self._process_item(item, following)

    def _may_claim(self, item: outbox.OutboxItem | None) -> outbox.OutboxItem | None:
        if item is None or self._stopping or self._wake.is_set():
            return None  # rows queued meanwhile may be in a better lane: look again first
        return item if self._wait_for(item) == 0 else None

    async def _process_item(self, item: outbox.OutboxItem, following: outbox.OutboxItem | None
                            ) -> outbox.OutboxItem | None:
        self._writes_before = self.pacer.writes if self.pacer is not None else 0
        claimed = None
        try:
            delivered = await self._deliver(item)
        except Exception as exc:
            failure = sort_failure(exc)
            if failure is None:
                raise
            await self._failed(item, exc, failure)
        else:
            sent_id = delivered.sent_id
            following = self._may_claim(following)
            # One transaction from Telegram's answer on: the message id and the done mark
            # (and the next row's claim: one commit fewer per row under a backlog).
            async with self.db.write(urgent=True) as conn:
                if delivered.record is not None:
                    await delivered.record(conn)
                await outbox.mark_done(conn, item.id, sent_id, self._writes())
                if (following is not None and await self._fenced(conn)
                        and await outbox.claim(conn, following.id)):
                    claimed = following
            if item.kind == outbox.CARD and sent_id is not None:
                # The card row was queued in the alert's own transaction.
                self.metrics.alert_to_card.observe(max(0.0, time.time() - item.queued_at))
            if sent_id is not None and self.on_sent is not None:
                await self.on_sent(item, sent_id)
        return claimed

    async def _failed(self, item: outbox.OutboxItem, exc: Exception, failure: Failure) -> None:
        if isinstance(exc, TelegramRetryAfter):
            wait = float(exc.retry_after)
            self._chat_hold[item.chat_id] = time.time() + wait
            self.metrics.delivered("retry_after")
            log.warning("delivery: 429 for chat %s, waiting %ss", item.chat_id, wait)
            await self._retry(item, time.time() + wait, f"429 retry after {wait}s", count=False)
        elif failure is Failure.TRANSIENT:
            self.metrics.delivered("transient_errors")
            delay = min(MAX_BACKOFF, 2.0 ** min(item.attempts, 10)) * (0.5 + random.random())
            log.warning("delivery: %s for %s (attempt %d), retrying in %.1fs",
                        type(exc).__name__, _what(item), item.attempts + 1, delay)
            await self._retry(item, time.time() + delay, f"{type(exc).__name__}: {exc}")
        elif isinstance(exc, TelegramMigrateToChat):
            if self.on_migrate is None:
                await self._park(item, f"chat migrated to {exc.migrate_to_chat_id}")
                return
            log.warning("chat %s was upgraded to supergroup %s; moving everything there",
                        item.chat_id, exc.migrate_to_chat_id)
            self.metrics.delivered("migrated")
            # Rewrites pending rows (this one included) to the new chat id.
            await self.on_migrate(item.chat_id, exc.migrate_to_chat_id)
            await self._retry(item, time.time(), "chat migrated", count=False)
        else:
            # The sends that tolerate "not modified", a deleted card or a refused URL have
            # done so already; here they are refusals like any other.
            await self._park(item, f"{type(exc).__name__}: {exc}")

    async def _retry(self, item: outbox.OutboxItem, at: float, error: str, *, count: bool = True
                     ) -> None:
        if count and item.attempts + 1 >= self.max_attempts:
            await self._park(item, f"gave up after {item.attempts + 1} attempts: {error}")
            return
        async with self.db.write(urgent=True) as conn:
            await outbox.retry_later(conn, item.id, at, error, self._writes())

    async def _park(self, item: outbox.OutboxItem, error: str) -> None:
        self.metrics.delivered("parked")
        log.error(
            "DELIVERY PARKED: %s to chat %s will not be sent: %s",
            _what(item), item.chat_id, error,
        )
        async with self.db.write(urgent=True) as conn:
            await outbox.park(conn, item.id, error, self._writes())


    async def _deliver(self, item: outbox.OutboxItem) -> sending.Delivered:
        if item.kind == outbox.CARD:
            assert item.incident_id is not None
            return await self.cards.sync(item.incident_id, item.chat_id)
        if item.kind == outbox.REPLY:
            sent = await sending.send_reply(self.bot, self.db, item)
            self.metrics.delivered("replies")
            return sending.Delivered(sent_id=sent)
        if item.kind == outbox.MESSAGE:
            sent = await sending.send_plain(self.bot, item)
            self.metrics.delivered("messages")
            return sending.Delivered(sent_id=sent)
        if item.kind == outbox.EDIT:
            await sending.edit_plain(self.bot, item)
            self.metrics.delivered("edited")
            return sending.Delivered()
        if item.kind == outbox.TOPIC_CLOSE:
            if self.topics is not None and item.incident_id:
                await self.topics.close(item.incident_id, item.chat_id)
            return sending.Delivered()
        if item.kind == outbox.DIGEST:
            if self.digests is None:
                return sending.Delivered()
            delivered = await self.digests.sync(int(item.payload["digest"]))
            self.metrics.delivered("sent" if delivered.sent_id else
                                   "edited" if delivered.record else "identical_skipped")
            return delivered
        if item.kind == outbox.COMMANDS:
            await sending.set_commands(self.bot, item)
            return sending.Delivered()
        raise Permanent(f"unknown outbox kind {item.kind!r}")


def _writes_needed(item: outbox.OutboxItem) -> int:
    """The writes a row will make, to pace it as a whole (PacedSession holds any more)."""
    return 2 if item.kind == outbox.TOPIC_CLOSE else 1  # rename, then close


def _what(item: outbox.OutboxItem) -> str:
    subject = f"incident {item.incident_id}" if item.incident_id else "message"
    return f"{item.kind} for {subject} (outbox #{item.id})"
