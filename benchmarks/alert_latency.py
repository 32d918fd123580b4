"""Webhook POST -> sendMessage at the emulator, 100 alerts in 100 groups.

    ./dev bench alert_latency
Two runs: one alert at a time (unloaded latency), then all 100 at once (a storm).
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import CHAT, payload_for_group, post, report, running_app
from sandbox.emulator import wait_for


async def measure(burst: bool, n: int = 100) -> list[float]:
    async with running_app() as (app, emu):
        posted: dict[str, float] = {}

        async def one(i: int) -> None:
            body = payload_for_group(i)
            t0 = time.time()
            assert await post(app, body) == 200
            posted[f"svc-{i:04d}"] = t0

        if burst:
            await asyncio.gather(*(one(i) for i in range(n)))
        else:
            for i in range(n):
                await one(i)
                await wait_for(lambda: len(emu.emulator.calls("sendMessage")) > len(posted) - 1,
                               30)
        await wait_for(lambda: len([c for c in emu.emulator.calls("sendMessage") if c["ok"]])
                       >= n, 120)
        out = []
        for call in emu.emulator.calls("sendMessage"):
            if not call["ok"] or call["params"].get("chat_id") not in (CHAT, str(CHAT)):
                continue
            text = str(call["params"].get("text", ""))
            for key, t0 in posted.items():
                if f"— {key}" in text:
                    out.append(call["at"] - t0)
                    break
        return out


async def main() -> None:
    print(report("sequential (one alert at a time)", await measure(burst=False)))
    print(report("burst (100 POSTs at once)", await measure(burst=True)))


if __name__ == "__main__":
    asyncio.run(main())
