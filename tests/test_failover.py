"""Replicas on one PostgreSQL schema, each a `python -m bot run` process against the
emulator (forked from one that has imported the libraries: tests/bot_forkserver.py), fed
a storm of alerts spread over them and twenty presses at once, while the leader is killed
with SIGKILL or, separately, stops itself (SIGSTOP) between claiming an outbox row and
sending it, for longer than its lease, and is then resumed. Then:

- every alert answered 2xx by any replica is stored;
- one card per incident in the chat (a second copy only where the documented window
  explains it: posted, not yet recorded, when the leader died or stopped);
- no decision executed twice; the outbox and the inbox drain;
- every press answered (a press the old leader carried out before it died may have lost
  its answer with it: such presses are counted, and their approval is stored);
- no getUpdates answered 409 (two pollers at once), ever;
- a standby took over, and a resumed leader stepped down and sent nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from bot_process import BotProcess, ForkServer, free_port
from harness import ALICE, BOB, CHAT, is_card, numbered_alert
from pg import pg_schema, rows_async
from pg import rows as pg_rows

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

LEASE = 3.0  # seconds: short, so a failover fits in a test
ENV = {
    "TELEGRAM_PACING": "false",
    "LEADER_LEASE": f"{LEASE:g}s",
    "CALLBACK_MAX_AGE": "120s",
    "FIRST_CARD_WAIT": "0",
    "LOG_LEVEL": "INFO",
}
READ_ONLY = {"getMe", "getChat", "getChatMember", "getChatAdministrators"}
# wait_for on the database: every 0.2 s, not at every emulator change (during a storm that
# would query it hundreds of times a second).
ON_DB: dict[str, Any] = {"interval": 0.2, "on_change": False}


def alert(n: int) -> tuple[str, bytes]:
    fingerprint = f"failover{n:08x}"
    return fingerprint, numbered_alert(n, fingerprint, "failover")


def incident_of(card: dict[str, Any]) -> str:
    for row in card["reply_markup"]["inline_keyboard"]:
        for b in row:
            if str(b.get("callback_data", "")).startswith("c1:d:"):
                return str(b["callback_data"]).split(":")[2]
    raise KeyError("no Details button")


@dataclass
class Cluster:
    emu: RunningEmulator
    url: str
    tmp: Path
    forks: ForkServer
    procs: list[BotProcess] = field(default_factory=list)
    posts: list[tuple[str, int | None]] = field(default_factory=list)
    presses: dict[str, str] = field(default_factory=dict)  # query id -> incident
    unrecorded: set[int] = field(default_factory=set)  # card message ids, at the fault
    done_at_fault: set[str] = field(default_factory=set)  # query ids handled before it
    posted: int = 0

    def add(self) -> BotProcess:
        i = len(self.procs)
        workdir = self.tmp / f"replica-{i}"
        workdir.mkdir()
        proc = BotProcess(self.emu, self.url, free_port(), workdir, self.forks)
        self.procs.append(proc)
        return proc

    async def start(self, proc: BotProcess, *, wait: bool = True, **env: str) -> None:
        await proc.start(wait=wait, **ENV, **env)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return pg_rows(self.url, sql, args)

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Without blocking the event loop, which the emulator (and so every replica's
        calls) shares."""
        return await rows_async(self.url, sql)

    @staticmethod
    async def role(proc: BotProcess) -> str | None:
        return await proc.role()

    async def leader(self, among: list[BotProcess], timeout: float = 30) -> BotProcess:
        async def one() -> BotProcess | None:
            roles = [await self.role(p) for p in among]
            leading = [p for p, r in zip(among, roles, strict=True) if r == "leader"]
            return leading[0] if len(leading) == 1 else None

        # Not at every emulator change: each look asks every replica over HTTP.
        return await wait_for(one, timeout, interval=0.1, on_change=False,
                              message="no single leader")

    def cards(self) -> list[dict[str, Any]]:
        return [m for m in self.emu.emulator.messages(CHAT) if is_card(m)]

    async def storm(self, count: int, senders: int = 4, to: list[BotProcess] | None = None,
                    under_way: asyncio.Event | None = None) -> None:
        """Alerts up to the `count`-th, each its own incident, posted to the replicas (or to
        those of `to`) in turn, as a load balancer spreads them; `under_way` is set once the
        first is answered (or the storm ends)."""
        targets = to or self.procs

        async def sender(http: aiohttp.ClientSession) -> None:
            while self.posted < count:
                n = self.posted
                self.posted += 1
                fingerprint, body = alert(n)
                proc = targets[n % len(targets)]
                status: int | None = None
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.post(
                        proc.url + "/alerts/alertmanager", data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=aiohttp.ClientTimeout(total=10),
                    ) as resp:
                        status = resp.status
                self.posts.append((fingerprint, status))
                if under_way is not None:
                    under_way.set()

        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(*(sender(http) for _ in range(senders)))
        finally:
            if under_way is not None:  # a storm that failed is not waited for
                under_way.set()

    async def waiting(self) -> list[dict[str, Any]]:
        """Recorded cards awaiting approval, not pressed yet (a copy left in the documented
        window is refused as out of date, rightly: not the press this test follows)."""
        recorded = {r[0] for r in await self.query(
            "SELECT message_id FROM cards WHERE message_id IS NOT NULL")}
        pressed = set(self.presses.values())
        return [c for c in self.cards() if "Awaiting approval" in c["text"]
                and c["message_id"] in recorded and incident_of(c) not in pressed]

    async def press(self, count: int) -> None:
        """Approve on `count` cards at once, once that many wait."""
        async def enough() -> list[dict[str, Any]] | None:
            waiting = await self.waiting()
            return waiting[:count] if len(waiting) >= count else None

        cards = await wait_for(enough, 30, **ON_DB, message="too few cards to press")
        for i, card in enumerate(cards):
            data = next(b["callback_data"] for row in card["reply_markup"]["inline_keyboard"]
                        for b in row if "Approve" in b["text"])
            query = self.emu.emulator.press_button(CHAT, card["message_id"], data,
                                                   ALICE if i % 2 else BOB)
            self.presses[query] = incident_of(card)

    def at_fault(self) -> None:
        """What the leader left when it died or stopped: cards on screen it had not recorded,
        presses it had carried out (read at once, before anyone else can record them)."""
        recorded = {r[0] for r in self.rows(
            "SELECT message_id FROM cards WHERE message_id IS NOT NULL")}
        self.unrecorded |= {c["message_id"] for c in self.cards()} - recorded
        for (body,) in self.rows("SELECT body FROM inbox WHERE state = 'done'"):
            query = (json.loads(body) if isinstance(body, str) else body).get("callback_query")
            if query:
                self.done_at_fault.add(query["id"])

    async def settled(self) -> bool:
        busy = (await self.query("""SELECT
            (SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')),
            (SELECT COUNT(*) FROM inbox WHERE state = 'pending'),
            (SELECT COUNT(*) FROM decisions WHERE state IN ('analyzing', 'approved',
                                                           'executing'))"""))[0]
        return tuple(busy) == (0, 0, 0) and not self.emu.emulator.pending_updates()

    async def first_call_after(self, killed_at: float, dead_at: float) -> float:
        """From the kill to the first call that reached Telegram once the killed process was
        gone (so made by another: the new leader)."""
        emulator = self.emu.emulator
        seen = 0  # calls already looked at: a storm's hundreds are copied once each

        def first() -> float | None:
            nonlocal seen
            new = emulator.calls(start=seen)
            seen += len(new)
            calls = [c["at"] for c in new if c["at"] > dead_at and c["method"] not in READ_ONLY]
            return min(calls) - killed_at if calls else None

        # The time is the call's own, so looking every 0.05 s costs it no precision.
        return float(await wait_for(first, 4 * LEASE, interval=0.05, on_change=False,
                                    message="the new leader made no call"))

    def check(self, label: str) -> str:
        ok = [f for f, status in self.posts if status is not None and 200 <= status < 300]
        stored = {r[0] for r in self.rows("SELECT fingerprint FROM alerts")}
        copies: dict[str, list[int]] = {}
        for card in self.cards():
            copies.setdefault(incident_of(card), []).append(card["message_id"])
        duplicates = [m for mids in copies.values() for m in sorted(mids)[:-1]]
        explained = [m for m in duplicates if m in self.unrecorded]
        started = self.rows("""SELECT decision_id, COUNT(*) FROM audit
                               WHERE action = 'execute' AND result = 'started'
                               GROUP BY decision_id""")
        stats = self.emu.emulator.callback_stats()
        lost = [q for q in stats["unanswered"] if q in self.done_at_fault]
        conflicts = [c for c in self.emu.emulator.calls("getUpdates") if c["error_code"] == 409]
        approved = {r[0] for r in self.rows(
            "SELECT incident_id FROM audit WHERE action = 'approve' AND result = 'approved'")}
        summary = (f"{label}: {len(self.posts)} posts, {len(ok)} 2xx, {len(copies)} incidents "
                   f"with cards, {len(duplicates)} duplicate cards ({len(explained)} in the "
                   f"documented window), {len(self.presses)} presses, {len(lost)} answers lost "
                   f"with the dead leader, {len(started)} executions, {len(conflicts)} x 409")
        print("\n" + summary)
        assert set(ok) <= stored, f"2xx but not stored: {sorted(set(ok) - stored)[:5]}"
        assert duplicates == explained, f"duplicate cards outside the window: {duplicates}"
        assert all(count == 1 for _, count in started), f"a decision ran twice: {started}"
        assert set(stats["unanswered"]) <= set(lost), stats
        assert {self.presses[q] for q in lost} <= approved
        assert conflicts == [], conflicts
        assert self.rows("SELECT COUNT(*) FROM outbox WHERE state = 'parked'") == [(0,)]
        assert self.rows("SELECT COUNT(*) FROM inbox WHERE state <> 'done'") == [(0,)]
        return summary


@pytest.fixture(scope="module")
def forks() -> Iterator[ForkServer]:
    """Every replica of these tests is forked from one process that has imported the
    libraries: ten fresh interpreters would spend most of the file's time importing."""
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def cluster(emu: RunningEmulator, tmp_path: Path, forks: ForkServer
                  ) -> AsyncIterator[Cluster]:
    async with pg_schema() as url:
        c = Cluster(emu, url, tmp_path, forks)
        try:
            yield c
        finally:
            for proc in c.procs:
                if proc.proc is not None and proc.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.proc.send_signal(signal.SIGCONT)
                    await proc.kill()


async def _at_least(cluster: Cluster, count: int) -> bool:
    return len(await cluster.waiting()) >= count


async def up(cluster: Cluster, replicas: int) -> BotProcess:
    """The first replica starts alone (it creates the schema) and leads; the others, started
    together, stand by."""
    first = cluster.add()
    await cluster.start(first)
    assert await cluster.leader([first]) is first
    others = [cluster.add() for _ in range(replicas - 1)]
    await asyncio.gather(*(cluster.start(p) for p in others))
    for p in others:
        assert await cluster.role(p) == "standby"
    return first


@pytest.mark.parametrize("replicas", [2, 3])
async def test_the_leader_killed_during_a_storm_and_presses(
        cluster: Cluster, replicas: int) -> None:
    began = time.monotonic()
    first = await up(cluster, replicas)
    await cluster.storm(30)
    await wait_for(lambda: _at_least(cluster, 25), 30, **ON_DB, message="too few cards")
    await cluster.press(5)  # in flight at the kill
    # And alerts, some to the dead leader: it is killed once the storm's first is answered.
    under_way = asyncio.Event()
    posting = asyncio.create_task(cluster.storm(60, under_way=under_way))
    await under_way.wait()
    killed_at = time.time()
    await first.kill()
    dead_at = time.time()
    cluster.at_fault()
    survivors = [p for p in cluster.procs if p is not first]
    await cluster.press(20)  # while nobody leads: they wait at Telegram for the next leader
    await posting
    leader = await cluster.leader(survivors, timeout=LEASE * 4)
    failover = await cluster.first_call_after(killed_at, dead_at)
    await wait_for(cluster.settled, 60, **ON_DB, message="the replicas did not settle")
    summary = cluster.check(f"{replicas} replicas, leader SIGKILLed")
    print(f"failover {failover:.2f} s (kill -> the new leader's first call), "
          f"{time.monotonic() - began:.1f} s in all")
    assert failover <= 2 * LEASE, summary
    assert "became leader" in leader.log_text()


@pytest.mark.parametrize("replicas", [2, 3])
async def test_the_leader_paused_past_its_lease_steps_down_when_resumed(
        cluster: Cluster, replicas: int) -> None:
    # The first leader stops itself the first time it has claimed a row, before the call.
    first = cluster.add()
    await cluster.start(first, wait=False, OPSGATE_FAULT="delivery.claimed:stop")
    assert first.proc is not None
    stat = Path(f"/proc/{first.proc.pid}/stat")
    await wait_for(lambda: stat.read_text().split(") ")[1].startswith("T"), 30,
                   interval=0.05, on_change=False, message="the leader did not stop at its claim")
    stopped_at = time.time()
    calls_before = sum(1 for c in cluster.emu.emulator.calls() if c["method"] not in READ_ONLY)
    cluster.at_fault()
    others = [cluster.add() for _ in range(replicas - 1)]
    await asyncio.gather(*(cluster.start(p) for p in others))
    await cluster.leader(others, timeout=LEASE * 4)
    # A load balancer sends nothing to a replica that does not answer (it is paused).
    await cluster.storm(25, to=others)
    await cluster.press(20)
    # Paused for well over its lease, then resumed while work is still coming in.
    await wait_for(lambda: time.time() - stopped_at > 2 * LEASE, 30, on_change=False)
    posting = asyncio.create_task(cluster.storm(50))
    first.proc.send_signal(signal.SIGCONT)
    await wait_for(lambda: "stepped down:" in first.log_text(), 20,  # reads the whole log
                   interval=0.05, on_change=False, message="the resumed leader did not step down")
    await posting
    assert await cluster.role(first) == "standby"
    await wait_for(cluster.settled, 60, **ON_DB, message="the replicas did not settle")
    summary = cluster.check(f"{replicas} replicas, leader SIGSTOPped past its lease then "
                            "resumed")
    # What the resumed process sent: its own count of calls, less those made before it
    # stopped (every write call then was its: the other replica had not started).
    async with aiohttp.ClientSession() as http:
        async with http.get(first.url + "/metrics") as resp:
            text = await resp.text()
    sent = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("opsgate_telegram_calls_total{")
               and not any(f'method="{m}"' in line for m in READ_ONLY))
    print(f"the resumed leader: {sent - calls_before:.0f} calls after it woke")
    assert sent - calls_before <= 1, summary
    # It woke holding the row it had claimed: the call was refused before it went out.
    assert "not sent: this process no longer leads" in first.log_text()
