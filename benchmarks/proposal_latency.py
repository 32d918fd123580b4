"""Alert POST -> a proposal on the card (rule engine alone), over 100 incidents.

    ./dev bench proposal_latency
"""

from __future__ import annotations

import asyncio
import time

from benchmarks.common import payload_for_group, post, report, running_app
from sandbox.emulator import wait_for


async def main(n: int = 100) -> None:
    async with running_app() as (app, emu):
        em = emu.emulator
        posted: dict[str, float] = {}
        for i in range(n):
            key = f"svc-{i:04d}"
            posted[key] = time.time()
            assert await post(app, payload_for_group(i)) == 200
            # One at a time: wait for this one's proposal before the next alert.
            def proposed(k: str = key) -> bool:
                return any(
                    c["ok"] and f"— {k}" in str(c["params"].get("text", ""))
                    and "Proposal" in str(c["params"].get("text", ""))
                    for c in em.calls("sendMessage") + em.calls("editMessageText")
                )

            await wait_for(proposed, 30)
        out = []
        calls = sorted(em.calls("sendMessage") + em.calls("editMessageText"),
                       key=lambda c: c["at"])
        for key, t0 in posted.items():
            first = next(c for c in calls if c["ok"]
                         and f"— {key}" in str(c["params"].get("text", ""))
                         and "Proposal" in str(c["params"].get("text", "")))
            out.append(first["at"] - t0)
        print(report("alert -> proposal on card (rules only)", out))


if __name__ == "__main__":
    asyncio.run(main())
