"""Group commit: webhooks that arrive together share one write transaction.

A webhook's payload joins a queue and its request waits for the lead. The one that gets
it, if its payload is still queued, opens a write transaction and stores queued payloads,
oldest first, each in its own savepoint, until the queue is empty or the batch is full
(MAX_PAYLOADS, MAX_BYTES of bodies): payloads that arrive meanwhile join it (the loop runs
between payloads). Then one COMMIT, and only then is any of them answered. A payload whose
ingest fails is undone alone and its request gets the error; the others commit. SQLite
failing (StorageUnavailable) fails the whole batch: every request of it gets the error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from bot import faults
from bot.alerts.ingest import IngestContext, IngestResult, accept_in
from bot.models import AlertGroup
from bot.polling import YieldTo
from storage.db import Database, StorageUnavailable, savepoint

MAX_PAYLOADS = 16  # per transaction: the first request of a batch waits for all of it
MAX_BYTES = 1024 * 1024  # of request bodies per transaction (one larger body goes alone)


@dataclass(eq=False)
class _Queued:
    group: AlertGroup
    now: datetime
    size: int
    done: bool = False
    result: IngestResult = field(default_factory=IngestResult)
    error: BaseException | None = None


class Intake:
    def __init__(self, db: Database, ctx: IngestContext, *, max_payloads: int = MAX_PAYLOADS,
                 max_bytes: int = MAX_BYTES, yield_to: YieldTo | None = None) -> None:
        self._db = db
        self._ctx = ctx
        self._max_payloads = max_payloads
        self._max_bytes = max_bytes
        self._queue: deque[_Queued] = deque()
        self._lead = asyncio.Lock()
        self._yield_to = yield_to
        self.commits = 0  # batches committed (tests count batching with it)

    @property
    def queued(self) -> int:
        """Payloads waiting for a batch to take them."""
        return len(self._queue)

    async def accept(self, group: AlertGroup, now: datetime, size: int) -> IngestResult:
        """Store one notification (`size`: its body's bytes) in the next commit; raises what
        its ingest raised, or StorageUnavailable when its batch could not be written."""
        queued = _Queued(group, now, size)
        self._queue.append(queued)
        try:
            async with self._lead:
                while not queued.done:
                    if self._yield_to is not None:
                        # Payloads arriving meanwhile join the batch: nothing is lost by it.
                        await self._yield_to()
                    await self._commit_batch(queued)
        finally:
            if not queued.done and queued in self._queue:
                self._queue.remove(queued)  # cancelled before any batch took it
        if queued.error is not None:
            raise queued.error
        return queued.result

    def _next(self, batch: list[_Queued], size: int) -> _Queued | None:
        if not self._queue or len(batch) >= self._max_payloads:
            return None
        if batch and size + self._queue[0].size > self._max_bytes:
            return None
        return self._queue.popleft()

    async def _commit_batch(self, leader: _Queued) -> None:
        batch: list[_Queued] = []
        try:
            async with self._db.write() as conn:
                size = 0
                while (queued := self._next(batch, size)) is not None:
                    batch.append(queued)
                    size += queued.size
                    try:
                        async with savepoint(conn):
                            queued.result = await accept_in(conn, queued.group, self._ctx,
                                                            queued.now)
                    except StorageUnavailable:
                        raise
                    except Exception as exc:  # this payload alone: a bug, a constraint
                        queued.error = exc
                    if len(batch) > 1:
                        faults.point("intake.batch")
                    # Requests that arrive meanwhile are read, and join this batch.
                    await asyncio.sleep(0)
        except Exception as exc:  # the batch was not written: every request of it hears why
            if not batch:  # failed before taking any (BEGIN): the leader's own hears it
                self._queue.remove(leader)
                batch.append(leader)
            for queued in batch:
                queued.error = exc
        except BaseException:
            # The leader was cancelled (shutdown): nothing committed, the others wait again.
            for queued in reversed(batch):
                if queued is not leader:
                    queued.result, queued.error = IngestResult(), None
                    self._queue.appendleft(queued)
            raise
        else:
            self.commits += 1
        for queued in batch:
            queued.done = True
