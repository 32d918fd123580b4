"""Data lifecycle: what is kept how long, and the periodic pruning that enforces it.

Defaults keep months (RETAIN_* in .env.example); 0 keeps forever. Pruning runs as one
of the timers' sweeps, at most every PRUNE_INTERVAL, in small batches so alerts and
presses never wait long for the writer.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from storage import inbox, retention
from storage.db import Database, StorageUnavailable
from storage.repo.sql import Conn

log = logging.getLogger(__name__)

BATCH = 200  # rows (or incidents) per write transaction


@dataclass(frozen=True)
class Retention:
    resolved_incidents: timedelta  # resolved (and untouched) this long: deleted with their rows
    audit: timedelta
    delivered_outbox: timedelta
    every: timedelta = timedelta(hours=1)


Find = Callable[[Conn, datetime, int], Awaitable[Sequence[Any]]]
Delete = Callable[[Conn, Sequence[Any]], Awaitable[object]]


async def _drain(db: Database, find: Find, delete: Delete, before: datetime) -> None:
    while True:
        async with db.read() as conn:
            keys = await find(conn, before, BATCH)
        if not keys:
            return
        async with db.write() as conn:
            await delete(conn, keys)
        if len(keys) < BATCH:
            return


async def prune(db: Database, keep: Retention, now: datetime) -> Counter[str]:
    """Delete what `keep` no longer keeps as of `now`. Rows deleted, per table."""
    deleted: Counter[str] = Counter()

    async def incidents(conn: Conn, ids: Sequence[str]) -> None:
        deleted.update(await retention.delete_incidents(conn, ids))

    def rows(table: str) -> Delete:
        async def delete(conn: Conn, ids: Sequence[int | str]) -> None:
            deleted[table] += await retention.delete_rows(conn, table, ids)
        return delete

    if keep.resolved_incidents:
        before = now - keep.resolved_incidents
        await _drain(db, retention.resolved_incidents_before, incidents, before)
        await _drain(db, retention.ended_silences_before, rows("silences"), before)
    if keep.audit:
        await _drain(db, retention.audit_before, rows("audit"), now - keep.audit)
    if keep.delivered_outbox:
        await _drain(db, retention.delivered_outbox_before, rows("outbox"),
                     now - keep.delivered_outbox)

    async def handled_updates(conn: Conn, ids: Sequence[int]) -> None:
        deleted["inbox"] += await inbox.delete(conn, ids)

    # Handled Telegram updates are kept a day to look into, whatever RETAIN_* says: after
    # that their ids may come again (storage.inbox.REUSED_AFTER).
    await _drain(db, inbox.handled_before, handled_updates, now - inbox.REUSED_AFTER)
    return deleted


class Pruner:
    """A timers sweep: prune once per `keep.every` (the first tick prunes at once)."""

    def __init__(self, db: Database, keep: Retention, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.keep = keep
        self.clock = clock
        self._last: datetime | None = None

    async def sweep(self) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.keep.every:
            return
        self._last = now
        try:
            deleted = await prune(self.db, self.keep, now)
        except StorageUnavailable as exc:
            log.warning("retention: pruning skipped, the database is busy: %s", exc)
            return
        if deleted:
            log.info("retention: deleted %s", ", ".join(
                f"{count} {table}" for table, count in sorted(deleted.items())))
