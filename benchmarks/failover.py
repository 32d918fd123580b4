"""Failover time: replicas of `python -m bot run` on one PostgreSQL schema, the leader killed
with SIGKILL again and again; each time, from the kill to the new leader's first Telegram
call (any call but the read-only ones a standby makes at its start), as the emulator saw
it. The killed replica is started again as a standby before the next kill.

    ./dev bench failover                    # 10 kills, 2 replicas, LEADER_LEASE=10s
    ./dev bench failover --kills 10 --replicas 3 --lease 3s

PostgreSQL at OPSGATE_TEST_POSTGRES (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ALICE, BOB, CHAT
from sandbox.emulator import wait_for
from sandbox.server import start_emulator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bot_process import BotProcess, free_port
from pg import pg_schema

READ_ONLY = {"getMe", "getChat", "getChatMember", "getChatAdministrators"}


async def leader_of(procs: list[BotProcess]) -> BotProcess | None:
    roles = [await p.role() for p in procs]
    leading = [p for p, r in zip(procs, roles, strict=True) if r == "leader"]
    return leading[0] if len(leading) == 1 else None


async def measure(kills: int, replicas: int, lease: str, seed: int) -> list[float]:
    rng = random.Random(seed)
    emu = await start_emulator()
    emu.emulator.add_chat(CHAT, title="On-call", admins=[ALICE, BOB])
    times: list[float] = []
    procs: list[BotProcess] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with pg_schema() as url:
                env: dict[str, Any] = {"LEADER_LEASE": lease, "LOG_LEVEL": "WARNING"}
                for i in range(replicas):
                    workdir = Path(tmp) / f"replica-{i}"
                    workdir.mkdir()
                    procs.append(BotProcess(emu, url, free_port(), workdir))
                await procs[0].start(**env)
                await asyncio.gather(*(p.start(**env) for p in procs[1:]))
                for n in range(kills):
                    leader = await wait_for(lambda: leader_of(procs), 60, interval=0.2,
                                            message="no single leader")
                    # Somewhere between two renewals, as a crash would be.
                    await asyncio.sleep(rng.uniform(0.0, 2.0))
                    killed_at = time.time()
                    await leader.kill()
                    dead_at = time.time()  # calls after this are another process's

                    def first_call(at: float = killed_at, gone: float = dead_at
                                   ) -> float | None:
                        calls = [c["at"] for c in emu.emulator.calls()
                                 if c["at"] > gone and c["method"] not in READ_ONLY]
                        return min(calls) - at if calls else None

                    took = await wait_for(first_call, 120, interval=0.05,
                                          message="no new leader called Telegram")
                    times.append(took)
                    print(f"kill {n + 1}: {took:.2f} s", flush=True)
                    await leader.start(**env)  # back, as a standby
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                await p.kill()
        await emu.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--lease", default="10s")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    times = asyncio.run(measure(args.kills, args.replicas, args.lease, args.seed))
    print(f"failover (kill -> the new leader's first Telegram call), {args.replicas} replicas, "
          f"LEADER_LEASE={args.lease}, {len(times)} kills: median "
          f"{statistics.median(times):.2f} s, worst {max(times):.2f} s, best {min(times):.2f} s")


if __name__ == "__main__":
    main()
