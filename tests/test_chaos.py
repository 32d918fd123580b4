"""A bounded chaos test: `python -m bot run` killed with SIGKILL at seeded random moments
while alerts are posted and their cards pressed, then checked against what must hold.

Each cycle starts the app, posts alerts and presses Approve on the cards that await it, and
kills the app after a random time; presses also go on while it is down (they queue at the
emulator, as at Telegram). One cycle's downtime is made long by moving the stored heartbeat
back (what the bot reads to tell how long it was away), so the presses that queued during
it are older than CALLBACK_MAX_AGE. A last clean run lets everything settle. Then:

- at least 90 % of the posts got a 2xx, and every alert of a 2xx is stored;
- every press is carried out exactly once (one audit row), except those that queued during
  the long downtime, which are recorded as stale and not carried out;
- no decision ran twice; the outbox is drained; every update is handled;
- duplicate cards are counted and printed, and each one is explained by the documented
  window: its first copy was on screen but not yet recorded when the process was killed.

OPSGATE_CHAOS_SEED picks the seed (printed at the end); OPSGATE_CHAOS_CYCLES the cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from bot_process import BotProcess
from harness import ALICE, CHAT, is_card, numbered_alert

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

SEED = int(os.environ.get("OPSGATE_CHAOS_SEED", "20261202"))
CYCLES = int(os.environ.get("OPSGATE_CHAOS_CYCLES", "4"))
LONG_DOWN_CYCLE = 1  # the cycle whose restart follows a (simulated) long downtime
POST_EVERY = 0.05  # seconds between alert posts while the app is up
PRESS_EVERY = 0.08  # slower than the posts: cards wait for a press, some across a kill
ENV = {
    "TELEGRAM_PACING": "false",  # the emulator's limits are off; pacing would only slow it
    "CALLBACK_MAX_AGE": "60s",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Press:
    incident_id: str
    query_id: str
    at: float
    cycle: int
    stale: bool = False  # queued at the emulator across the long downtime


@dataclass
class Chaos:
    emu: RunningEmulator
    bot: BotProcess
    rng: random.Random
    posts: list[tuple[str, int | None]] = field(default_factory=list)  # (fingerprint, status)
    presses: dict[str, Press] = field(default_factory=dict)  # by incident
    unrecorded_at_kill: set[int] = field(default_factory=set)  # card message ids
    kills: int = 0
    starting_time: float = 0.0  # seconds spent waiting for the app to come up
    up: bool = False
    saving: bool = False  # the presser leaves the cards alone (to press them while down)
    cycle: int = 0
    posting: bool = True  # cleared at the end: the post on the wire is let finish

    # -- what the storm does ------------------------------------------------------------

    def alert(self, n: int) -> tuple[str, bytes]:
        fingerprint = f"{SEED % 10**6:06d}{n:010x}"
        return fingerprint, numbered_alert(n, fingerprint, "chaos")

    async def poster(self) -> None:
        n = 0
        async with aiohttp.ClientSession() as http:
            while self.posting:
                if not self.up:
                    await asyncio.sleep(POST_EVERY)
                    continue
                n += 1
                fingerprint, body = self.alert(n)
                status: int | None = None
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.post(
                        self.bot.url + "/alerts/alertmanager", data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as resp:
                        status = resp.status
                self.posts.append((fingerprint, status))
                await asyncio.sleep(POST_EVERY * self.rng.uniform(0.5, 1.5))

    def press_one(self) -> None:
        # The card the database knows: a copy left by a kill in the documented window is
        # refused as out of date, which is right, but not the press this test follows.
        recorded = {r[0] for r in self.bot.rows(
            "SELECT message_id FROM cards WHERE message_id IS NOT NULL")}
        waiting = [c for c in self.cards() if "Awaiting approval" in c["text"]
                   and c["message_id"] in recorded and _incident_of(c) not in self.presses]
        if not waiting:
            return
        card = self.rng.choice(waiting)
        data = next(b["callback_data"] for row in card["reply_markup"]["inline_keyboard"]
                    for b in row if "Approve" in b["text"])
        query = self.emu.emulator.press_button(CHAT, card["message_id"], data, ALICE)
        self.presses[_incident_of(card)] = Press(_incident_of(card), query, time.time(),
                                                 self.cycle)

    async def presser(self, starting: asyncio.Event) -> None:
        while True:
            # Not while the app starts: a press then is neither clearly before its
            # downtime was measured nor clearly after.
            if not starting.is_set() and not self.saving:
                self.press_one()
            await asyncio.sleep(PRESS_EVERY * self.rng.uniform(0.5, 1.5))

    def cards(self) -> list[dict[str, Any]]:
        return [m for m in self.emu.emulator.messages(CHAT) if is_card(m)]

    # -- one cycle ----------------------------------------------------------------------

    async def start(self, starting: asyncio.Event) -> None:
        starting.set()
        began = time.monotonic()
        ups = self.bot.log_text().count("opsgate is up")
        leads = self.bot.log_text().count("became leader")
        await self.bot.start(**ENV)
        # Up and leading: polling and the inbox worker run (the start-up drain is over). On
        # PostgreSQL a restart leads only once the killed process's lease ran out; until then
        # the bot is as away as while it was down (a press queued then is as old).
        await wait_for(lambda: self.bot.log_text().count("opsgate is up") > ups
                       and self.bot.log_text().count("became leader") > leads, 30,
                       message="the app did not come up and lead")
        self.up = True
        self.starting_time += time.monotonic() - began
        starting.clear()

    async def kill(self) -> None:
        self.up = False
        await self.bot.kill()
        self.kills += 1
        recorded = {r[0] for r in self.bot.rows(
            "SELECT message_id FROM cards WHERE message_id IS NOT NULL")}
        # Posted by Telegram, not yet known to the database: the documented window.
        self.unrecorded_at_kill |= {c["message_id"] for c in self.cards()} - recorded

    def simulate_long_downtime(self) -> None:
        """The app was away for ten minutes: presses queued meanwhile are stale."""
        long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        self.bot.execute("UPDATE meta SET value = ? WHERE key = 'heartbeat'", (long_ago,))
        # Still at Telegram and not in the inbox: these come with the start-up drain. (One
        # already recorded is as old as the time since it was recorded: young.)
        recorded = {r[0] for r in self.bot.rows("SELECT update_id FROM inbox")}
        queued = {u["callback_query"]["id"] for u in self.emu.emulator.pending_updates()
                  if "callback_query" in u and u["update_id"] not in recorded}
        for press in self.presses.values():
            if press.query_id in queued:
                press.stale = True


def _incident_of(card: dict[str, Any]) -> str:
    for row in card["reply_markup"]["inline_keyboard"]:
        for b in row:
            if str(b.get("callback_data", "")).startswith("c1:d:"):
                return str(b["callback_data"]).split(":")[2]
    raise KeyError("no Details button")


async def test_chaos_kills_during_a_storm_with_presses(
    botproc: BotProcess, emu: RunningEmulator,
) -> None:
    began = time.monotonic()
    chaos = Chaos(emu, botproc, random.Random(SEED))
    starting = asyncio.Event()
    starting.set()
    await chaos.start(starting)
    tasks = [asyncio.create_task(chaos.poster()), asyncio.create_task(chaos.presser(starting))]
    try:
        for cycle in range(CYCLES):
            chaos.cycle = cycle
            chaos.saving = cycle == LONG_DOWN_CYCLE
            await asyncio.sleep(chaos.rng.uniform(1.0, 2.5))
            await chaos.kill()
            await asyncio.sleep(chaos.rng.uniform(0.2, 1.0))  # down: presses queue
            if chaos.saving:
                for _ in range(3):
                    chaos.press_one()  # cards saved for it: presses surely queue now
                chaos.saving = False
                chaos.simulate_long_downtime()
            await chaos.start(starting)
        # The last run: let it work through everything, then stop it cleanly.
        await asyncio.sleep(1.0)
    finally:
        # A post cut short on the client's side still goes on in the app and may commit
        # after the app looked settled: the last post finishes, and its answer is counted.
        chaos.posting = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(tasks[0]), 15)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await wait_for(lambda: _settled(botproc, emu), 60, message="the app did not settle")
    assert await botproc.terminate() == 0
    _check(chaos, botproc, time.monotonic() - began)


def _settled(bot: BotProcess, emu: RunningEmulator) -> bool:
    busy = bot.rows("""SELECT
        (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')),
        (SELECT COUNT(*) FROM inbox WHERE state = 'pending'),
        (SELECT COUNT(*) FROM decisions WHERE state IN ('analyzing', 'approved', 'executing'))
    """)[0]
    return busy == (0, 0, 0) and not emu.emulator.pending_updates()


def _check(chaos: Chaos, bot: BotProcess, runtime: float) -> None:
    ok = [f for f, status in chaos.posts if status is not None and 200 <= status < 300]
    stored = {r[0] for r in bot.rows("SELECT fingerprint FROM alerts")}
    audit: dict[str, list[str]] = {}
    for incident_id, result in bot.rows(
            "SELECT incident_id, result FROM audit WHERE action = 'approve' AND user_id = ?"
            " ORDER BY id", (ALICE["id"],)):
        audit.setdefault(incident_id, []).append(result)
    started = bot.rows("""SELECT decision_id, COUNT(*) FROM audit
                          WHERE action = 'execute' AND result = 'started'
                          GROUP BY decision_id""")
    copies: dict[str, list[int]] = {}
    for card in chaos.cards():
        copies.setdefault(_incident_of(card), []).append(card["message_id"])
    duplicates = [mid for mids in copies.values() for mid in sorted(mids)[:-1]]
    explained = [mid for mid in duplicates if mid in chaos.unrecorded_at_kill]
    refused_again = sum(len(r) - 1 for r in audit.values() if len(r) > 1)
    stale = [p for p in chaos.presses.values() if p.stale]
    print(f"\nchaos: seed {SEED}, {CYCLES} cycles ({chaos.kills} SIGKILLs), "
          f"{len(chaos.posts)} posts, {len(ok)} 2xx ({100 * len(ok) / len(chaos.posts):.1f} %), "
          f"{len(chaos.presses)} presses ({len(stale)} queued across the long downtime), "
          f"{len(copies)} incidents with cards, {len(duplicates)} duplicate cards "
          f"({len(explained)} in the documented window), {refused_again} presses handled "
          f"twice, {runtime:.1f} s ({chaos.starting_time:.1f} s of it starting the app)")

    assert len(ok) >= 0.9 * len(chaos.posts), "fewer than 90 % of the posts got a 2xx"
    assert set(ok) <= stored, f"2xx but not stored: {sorted(set(ok) - stored)[:5]}"
    assert stale, "no press queued across the long downtime: the stale rule went untested"
    for press in chaos.presses.values():
        results = audit.get(press.incident_id, [])
        if press.stale:
            assert "stale_press" in results and "approved" not in results, (press, results)
        else:
            # Exactly once: the approval and the update's done mark commit together, so a
            # kill never hands a carried-out press over again.
            assert results == ["approved"], (press, results)
    assert all(count == 1 for _, count in started), f"a decision ran twice: {started}"
    approved = sum(1 for p in chaos.presses.values() if not p.stale)
    assert len(started) == approved
    unsent = bot.rows("SELECT id, kind, lane, state, attempts, incident_id, created_at,"
                      " next_attempt_at, not_before, last_error FROM outbox"
                      " WHERE state IN ('pending', 'sending')")
    assert unsent == [], f"left unsent after a clean stop: {unsent}"
    assert bot.rows("SELECT COUNT(*) FROM outbox WHERE state = 'parked'") == [(0,)]
    assert bot.rows("SELECT COUNT(*) FROM inbox WHERE state <> 'done'") == [(0,)]
    assert duplicates == explained, f"duplicate cards outside the window: {duplicates}"
