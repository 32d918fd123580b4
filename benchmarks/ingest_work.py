"""What one webhook costs as its incident grows: the same 50-alert re-delivery into an
incident that already holds 50, 500 or 5,000 alerts.

    ./dev bench ingest_work [--runs 15]

Work is counted, not timed: SQLite VM steps on the write connection (a progress handler
called at every instruction) and rows fetched into Python. accept() is also timed, in
separate runs without the handler (it slows every instruction). Medians of --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from bot.alerts.ingest import IngestContext, accept
from bot.alerts.routing import RouteTable, default_route
from bot.models import Alert, AlertGroup, AlertStatus
from storage.db import Database

CHAT = -1001000000001
T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
CTX = IngestContext(routes=RouteTable([], default_route(CHAT, [111])),
                    group_by=("alertname",), locale="en", tz_name="UTC")
PAYLOAD = 50  # alerts per webhook, as Alertmanager's max_alerts would bound it
SIZES = (50, 500, 5000)


def alert(i: int, status: AlertStatus = AlertStatus.FIRING) -> Alert:
    """Pod i of one crash-looping deployment (severities vary, as in a real group)."""
    return Alert(
        fingerprint=f"{i:016x}", status=status, starts_at=T0 + timedelta(seconds=i),
        ends_at=T0 + timedelta(hours=1) if status is AlertStatus.RESOLVED else None,
        labels={"alertname": "KubePodCrashLooping", "namespace": "shop",
                "deployment": "cart", "pod": f"cart-{i:05d}",
                "severity": ("warning", "critical", "info")[i % 3]},
        annotations={"summary": f"Pod shop/cart-{i:05d} is crash looping"},
    )


def group(alerts: list[Alert]) -> AlertGroup:
    return AlertGroup(source="alertmanager", group_key='{}:{alertname="KubePodCrashLooping"}',
                      group_labels={"alertname": "KubePodCrashLooping"}, alerts=alerts)


@dataclass
class Work:
    steps: int = 0  # SQLite VM instructions on the write connection
    rows: int = 0  # rows fetched into Python


class _RowCounter:
    """Counts rows aiosqlite cursors hand to Python, while installed."""

    def __init__(self) -> None:
        self.rows = 0

    @contextmanager
    def installed(self) -> Iterator[None]:
        cursor = aiosqlite.Cursor
        originals = {name: getattr(cursor, name) for name in
                     ("fetchone", "fetchmany", "fetchall")}

        def counting(name: str) -> Callable[..., Any]:
            original = originals[name]

            async def fetch(self_: aiosqlite.Cursor, *args: Any) -> Any:
                got = await original(self_, *args)
                self.rows += (got is not None) if name == "fetchone" else len(got)
                return got

            return fetch

        for name in originals:
            setattr(cursor, name, counting(name))
        try:
            yield
        finally:
            for name, original in originals.items():
                setattr(cursor, name, original)


async def measure_work(db: Database, body: AlertGroup, now: datetime) -> Work:
    """The work of one accept(): VM steps on the writer and rows fetched."""
    writer = db._require(db._writer)
    work = Work()

    def step() -> int:
        work.steps += 1
        return 0  # 0: go on

    counter = _RowCounter()
    await writer.set_progress_handler(step, 1)
    try:
        with counter.installed():
            await accept(db, body, CTX, now)
    finally:
        await writer.set_progress_handler(None, 1)  # type: ignore[arg-type]  # None removes it
    work.rows = counter.rows
    return work


@asynccontextmanager
async def incident_of(size: int) -> AsyncIterator[Database]:
    """A fresh database with one open incident of `size` firing alerts, sent as
    Alertmanager would with max_alerts: in payloads of at most 500."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "work.db")
        await db.open()
        try:
            for start in range(0, size, 500):
                await accept(db, group([alert(i) for i in range(start, min(size, start + 500))]),
                             CTX, T0)
            yield db
        finally:
            await db.close()


def redelivery() -> AlertGroup:
    """The same 50 alerts again (Alertmanager re-sends whole groups), one of them resolved
    and one new, so counts and severity change."""
    alerts = [alert(i) for i in range(PAYLOAD - 2)]
    return group([*alerts, alert(PAYLOAD - 2, AlertStatus.RESOLVED), alert(10**6 + PAYLOAD)])


async def run(size: int, runs: int) -> tuple[float, float, float]:
    """Median (VM steps, rows fetched, accept() ms) of `runs` re-deliveries."""
    steps, rows, ms = [], [], []
    async with incident_of(size) as db:
        body = redelivery()
        for n in range(runs):
            now = T0 + timedelta(minutes=1 + n)
            t0 = time.perf_counter()
            await accept(db, body, CTX, now)
            ms.append((time.perf_counter() - t0) * 1000)
        for n in range(runs):
            work = await measure_work(db, body, T0 + timedelta(minutes=100 + n))
            steps.append(work.steps)
            rows.append(work.rows)
    return statistics.median(steps), statistics.median(rows), statistics.median(ms)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench ingest_work")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"the same {PAYLOAD}-alert re-delivery, median of {args.runs} runs")
    print(f"{'alerts in incident':>18} {'VM steps':>10} {'rows fetched':>12} {'accept() ms':>11}")
    for size in SIZES:
        steps, rows, ms = await run(size, args.runs)
        print(f"{size:>18} {steps:>10.0f} {rows:>12.0f} {ms:>11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
