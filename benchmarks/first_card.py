"""Telegram writes per new incident, and alert -> first message, with and without
FIRST_CARD_WAIT, for a model that answers in 0.3 s, 1 s and 3 s (tests/fake_llm.py).

    ./dev bench first_card [N]

A card posted "Analyzing…" and edited with the proposal costs two writes of the chat's
budget (about one a second in a group); one posted with its proposal costs one. The price
is the wait: alert -> first message grows up to FIRST_CARD_WAIT.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import payload_for_group, post, running_app
from sandbox.emulator import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_llm import fake_llm_server

ANSWER = {"action": {"verb": "rollout-restart", "target_kind": "deployment",
                     "target_name": "cart", "namespace": "shop", "params": {}},
          "risk": "medium", "reasoning": "Restart it.", "confidence": 0.8}


def about(calls: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [c for c in calls if c["ok"] and f"— {key}" in str(c["params"].get("text", ""))]


async def one_run(n: int, latency: float, wait: str) -> str:
    async with fake_llm_server() as llm:
        llm.answer(ANSWER)
        llm.latency = latency
        async with running_app(first_card_wait=wait, llm_base_url=llm.url,
                               llm_model="bench-model") as (app, emu):
            em = emu.emulator
            posted: dict[str, float] = {}
            for i in range(n):
                posted[f"svc-{i:04d}"] = time.time()
                assert await post(app, payload_for_group(i)) == 200

            def proposed() -> bool:
                shown = em.calls("sendMessage") + em.calls("editMessageText")
                return all(any("bench-model" in str(c["params"].get("text", ""))
                               for c in about(shown, key)) for key in posted)

            await wait_for(proposed, 60 + n * latency)
            sends, edits = em.calls("sendMessage"), em.calls("editMessageText")
            writes = sum(len(about(sends, k)) + len(about(edits, k)) for k in posted)
            first = [min(c["at"] for c in about(sends, k)) - t0 for k, t0 in posted.items()]
            return (f"model {latency:>3} s  FIRST_CARD_WAIT={wait:<3}  "
                    f"{writes / n:.2f} writes per incident  "
                    f"alert -> first message median {statistics.median(first) * 1000:.0f} ms")


async def main(n: int = 10) -> None:
    await one_run(1, 0.0, "0s")  # warm-up: the process's first card pays for imports
    for latency in (0.3, 1.0, 3.0):
        for wait in ("0s", "2s"):
            print(await one_run(n, latency, wait), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*(int(a) for a in sys.argv[1:])))
