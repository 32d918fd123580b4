"""Stopping a stage ends its loop even when a wake-up lands in the same loop turn.

Python 3.11's asyncio.wait_for returns the inner result instead of raising when it is
cancelled in the same turn as the awaited event fires, so a loop built on it kept
running after stop() and the app's teardown waited forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from harness import Harness

from sandbox.emulator import wait_for


def _parked(event: asyncio.Event) -> Callable[[], bool]:
    # The loop waits on its wake-up: someone is waiting for the event.
    return lambda: bool(getattr(event, "_waiters", None))


@pytest.mark.parametrize("stage", ["delivery", "analysis", "execution"])
async def test_stage_stops_when_woken_as_it_is_cancelled(app: Harness, stage: str) -> None:
    worker = getattr(app.pipeline, stage)
    for _ in range(20):
        await app.settled()
        await wait_for(_parked(worker._wake), 10)
        worker._wake.set()
        async with asyncio.timeout(5):
            await worker.stop()
        worker.start()
