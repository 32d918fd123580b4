"""What watching costs: a /metrics scrape against a /healthz round trip (the HTTP baseline,
same run), on an empty database and after 300 incidents; and the Telegram session
middleware's cost per Bot API call against calling the same request without it.

    ./dev bench metrics_cost
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import aiohttp
from aiogram.methods import GetMe

from benchmarks.common import payload_for_group, post, report, running_app
from bot.app import App
from bot.metrics import Metrics
from bot.telegram.observed import ObservedSession, TelegramReach
from sandbox.emulator import wait_for
from storage import outbox


async def drained(app: App) -> bool:
    assert app.db is not None
    async with app.db.read() as conn:
        return await outbox.pending_count(conn) == 0


async def timed_gets(http: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with http.get(url) as resp:
            await resp.read()
        out.append(time.perf_counter() - t0)
    return out


async def scrapes(n: int = 100, incidents: int = 300) -> None:
    async with running_app() as (app, _emu):
        base = f"http://127.0.0.1:{app.port}"
        async with aiohttp.ClientSession() as http:
            for label in ("empty database", f"{incidents} incidents"):
                if label != "empty database":
                    for i in range(incidents):
                        assert await post(app, payload_for_group(i)) == 200
                    await wait_for(lambda: drained(app), 300)
                health = await timed_gets(http, base + "/healthz", n)
                scrape = await timed_gets(http, base + "/metrics", n)
                print(report(f"/healthz, {label}", health))
                print(report(f"/metrics, {label}", scrape))
                print(f"  ratio of medians /metrics : /healthz = "
                      f"{statistics.median(scrape) / statistics.median(health):.2f}")


async def session_overhead(n: int = 20_000) -> None:
    async def make_request(bot: Any, method: Any) -> bool:
        return True

    observed = ObservedSession(Metrics(), TelegramReach())
    method = GetMe()
    bare, watched = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            await make_request(None, method)
        bare.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for _ in range(n):
            await observed(make_request, None, method)  # type: ignore[arg-type]
        watched.append((time.perf_counter() - t0) / n)
    b, w = statistics.median(bare), statistics.median(watched)
    print(f"Bot API call without / with the session middleware: {b * 1e6:.2f} / "
          f"{w * 1e6:.2f} µs per call (medians of 5 x {n}); added {(w - b) * 1e6:.2f} µs")


async def main() -> None:
    await scrapes()
    await session_overhead()


if __name__ == "__main__":
    asyncio.run(main())
