"""The loop every background stage runs: do the work, then wait for a commit
that concerns the stage or for a bounded interval, whichever comes first.

The wake-up (storage.db.Wake) is only a hint for work committed in this
process; the interval is what finds work committed by another process.
"""

from __future__ import annotations

import asyncio
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
        try:
            await asyncio.wait_for(wake.wait(), every)
        except TimeoutError:
            pass
