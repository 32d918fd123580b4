"""The loop every background stage runs: do the work, then wait for a commit
that concerns the stage or for a bounded interval, whichever comes first.

The wake-up (storage.db.Wake) is only a hint for work committed in this
process; the interval is what finds work committed by another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


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
