"""The loop every background stage runs: do the work, then wait for a commit
that concerns the stage or for a bounded interval, whichever comes first.

The wake-up (storage.db.Wake) is only a hint for work committed in this
process; the interval is what finds work committed by another process.
A `Stage` holds that loop and the tasks it starts for single items, and stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

# A stage that shares the event loop with delivery waits on it (bounded) before its work, so
# the cards people are waiting for go out first (DeliveryWorker.turn / caught_up).
YieldTo = Callable[[], Awaitable[None]]


async def run_forever(
    name: str, work: Callable[[], Awaitable[object]], wake: asyncio.Event | None, every: float
) -> None:
    while True:
        if wake is not None:
            wake.clear()  # before the work: a commit during it runs the work again
        try:
            await work()
        except Exception:
            log.exception("%s: unexpected error; continuing", name)
        if wake is None:
            await asyncio.sleep(every)
            continue
        await wait_for_wake(wake, every)


async def wait_for_wake(wake: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    """Return when `wake` is set or after `timeout` seconds.

    Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives in the
    same loop turn as the event, and the cancelled loop then runs on forever.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await wake.wait()


class Stage:
    """A background stage's tasks: its loop (`run_forever` over `work`) and the tasks the
    work starts for single items (one per decision), keyed so that an item under way is
    not started twice. Stopping cancels them all and waits until they have ended."""

    def __init__(self, name: str, work: Callable[[], Awaitable[object]],
                 wake: asyncio.Event | None, every: float) -> None:
        self.name = name
        self._work = work
        self._wake = wake
        self._every = every
        self._loop: asyncio.Task[None] | None = None
        self.running: dict[int, asyncio.Task[Any]] = {}  # item -> its task, until it ends

    def start(self) -> None:
        self._loop = asyncio.create_task(
            run_forever(self.name, self._work, self._wake, self._every), name=self.name)

    def spawn(self, key: int, job: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(job, name=name)
        self.running[key] = task

        def forget(_task: asyncio.Task[Any]) -> None:
            if self.running.get(key) is task:
                del self.running[key]

        task.add_done_callback(forget)

    async def drain(self) -> None:
        """Wait for the item tasks under way (tests, benchmarks)."""
        while self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self.running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None
        self.running.clear()
