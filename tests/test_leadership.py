"""The leader lease: two Database objects on one SQLite file stand for two processes (one
process may not run two apps on one file), each with its own Leadership and a fake clock."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from factories import T0, make_incident
from handler_session import RecordingSession
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from bot.cards.notes import Voice
from bot.execution.executor import ExecutionResult
from bot.execution.runner import ExecutionRunner
from bot.leadership import Leadership, NotLeader, Role
from bot.models import Action, DecisionState, Proposal, Risk, Verb
from bot.telegram.delivery import DeliveryWorker
from storage import outbox, repo, transitions
from storage.backends import database_for
from storage.db import Database, StorageUnavailable
from storage.repo import lease

LEASE = 10.0
RENEW = LEASE / 3
CHAT = -1001234567890
OK_MESSAGE = {
    "ok": True,
    "result": {"message_id": 77, "date": 1764000000, "chat": {"id": CHAT, "type": "supergroup"},
               "text": "hi"},
}


@dataclass
class Clock:
    """One process's clocks: wall time (what the lease row stores) and monotonic time (the
    local deadline). `skew` puts this host's wall clock ahead of the others'."""

    now: list[float]  # shared by every process: real time passing
    skew: float = 0.0

    def wall(self) -> float:
        return 1_764_000_000.0 + self.now[0] + self.skew

    def mono(self) -> float:
        return self.now[0]


class Two:
    """Two processes on one database file, and the time they share."""

    def __init__(self, target: str) -> None:
        self.path = target  # a SQLite file or a PostgreSQL schema (pg.Databases)
        self.now = [0.0]
        self.dbs: list[Database] = []
        self.a: Leadership
        self.b: Leadership

    async def open(self, skew_b: float = 0.0) -> None:
        for _ in range(2):
            db = database_for(self.path)
            await db.open()
            self.dbs.append(db)
        self.a = self.leadership(self.dbs[0], "host-a:1:aaaa", Clock(self.now))
        self.b = self.leadership(self.dbs[1], "host-b:2:bbbb", Clock(self.now, skew_b))

    @staticmethod
    def leadership(db: Database, holder: str, clock: Clock) -> Leadership:
        return Leadership(db, lease_for=LEASE, renew_every=RENEW, holder=holder,
                          clock=clock.wall, monotonic=clock.mono)

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds

    async def row(self) -> lease.Lease | None:
        async with self.dbs[0].read() as conn:
            return await lease.current(conn)

    async def close(self) -> None:
        for db in self.dbs:
            await db.close()


@pytest.fixture
async def two(db_target: str) -> AsyncIterator[Two]:
    pair = Two(db_target)
    await pair.open()
    yield pair
    await pair.close()


def role_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.leadership"
            and r.getMessage().startswith(("became leader", "stepped down"))]


async def test_the_first_to_look_leads_and_the_other_stands_by(
        two: Two, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    await two.a.step()
    await two.b.step()
    assert (two.a.role, two.a.token) == (Role.LEADER, 1)
    assert (two.b.role, two.b.token) == (Role.STANDBY, None)
    assert two.a.leads() and not two.b.leads()
    two.a.gate("sendMessage")
    for method in ("sendMessage", "getUpdates", "answerCallbackQuery", "deleteWebhook"):
        with pytest.raises(NotLeader):
            two.b.gate(method)
    two.b.gate("getMe")  # start-up checks read, and change nothing
    assert await two.row() == lease.Lease("host-a:1:aaaa", 1, two.a.clock() + LEASE)
    # Looking again changes nothing and logs nothing more.
    await two.b.step()
    assert role_lines(caplog) == ["became leader (token 1)"]
    assert [r.getMessage() for r in caplog.records].count(
        "standby: host-a:1:aaaa leads (token 1)") == 1


async def test_renewals_keep_the_token_and_move_the_deadline(two: Two) -> None:
    await two.a.step()
    for _ in range(10):
        two.advance(RENEW)
        await two.a.step()
        await two.b.step()
        assert two.a.token == 1 and two.a.leads()
        assert two.b.role is Role.STANDBY
    # The deadline counts from the last renewal, less the margin.
    two.advance(LEASE - two.a.margin - 0.01)
    assert two.a.leads()
    two.advance(0.02)
    assert not two.a.leads()
    with pytest.raises(NotLeader):
        two.a.gate("sendMessage")


async def test_a_lapsed_lease_is_taken_over_with_a_new_token(
        two: Two, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    await two.a.step()
    two.advance(LEASE - 0.5)  # A stopped renewing (paused): its own deadline has passed ...
    assert not two.a.leads()
    await two.b.step()  # ... but the lease has not expired yet
    assert two.b.role is Role.STANDBY
    two.advance(0.6)
    await two.b.step()
    assert (two.b.role, two.b.token) == (Role.LEADER, 2)
    await two.a.step()  # A wakes and looks
    assert two.a.role is Role.STANDBY
    assert role_lines(caplog) == [
        "became leader (token 1)", "became leader (token 2)",
        "stepped down: lease expired: no renewal within LEADER_LEASE",
    ]
    # A stands by; when B's lease lapses in turn, A takes it with a token above B's.
    two.advance(LEASE + 0.1)
    await two.a.step()
    assert two.a.token == 3


async def test_a_renewal_that_finds_the_lease_taken_steps_down(
        db_target: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    pair = Two(db_target)
    await pair.open(skew_b=LEASE)  # B's wall clock is a lease ahead: it sees A's as lapsed
    try:
        await pair.a.step()
        await pair.b.step()
        assert pair.b.token == 2 and pair.a.leads()  # A's own deadline cannot know
        pair.advance(RENEW)
        await pair.a.step()
        assert pair.a.role is Role.STANDBY
        assert role_lines(caplog)[-1] == "stepped down: lease lost: host-b:2:bbbb took it " \
                                         "(token 2)"
    finally:
        await pair.close()


async def test_a_failing_renewal_leads_until_the_deadline_then_steps_down(
        two: Two, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    await two.a.step()

    async def unavailable(*args: Any, **kwargs: Any) -> bool:
        raise StorageUnavailable("disk I/O error")

    monkeypatch.setattr(lease, "renew", unavailable)
    two.advance(RENEW)
    await two.a.step()
    two.advance(RENEW)
    await two.a.step()
    assert two.a.role is Role.LEADER and two.a.leads()
    assert sum("renewal failed (still leading" in r.getMessage() for r in caplog.records) == 1
    two.advance(RENEW)
    await two.a.step()
    assert two.a.role is Role.STANDBY
    assert role_lines(caplog)[-1] == \
        "stepped down: renewal failed: StorageUnavailable: disk I/O error"


async def test_a_release_lets_a_standby_take_over_at_once(two: Two) -> None:
    await two.a.step()
    await two.b.step()
    await two.a.release()
    assert two.a.role is Role.STANDBY
    await two.b.step()
    assert two.b.token == 2


async def test_a_lease_left_by_a_killed_process_of_this_host_is_taken_at_once(
        two: Two, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "bot.leadership")
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    dead = f"{socket.gethostname()}:{child.pid}:dead"
    alive = f"{socket.gethostname()}:{os.getpid()}:live"
    for holder, local, leads in ((alive, True, False), (dead, False, False), (dead, True, True)):
        async with two.dbs[0].write() as conn:
            await conn.execute("DELETE FROM leader_lease")
            await conn.execute(
                "INSERT INTO leader_lease (name, holder, token, expires_at) VALUES (?,?,?,?)",
                ("leader", holder, 5, two.a.clock() + LEASE))
        who = Two.leadership(two.dbs[1], "host-b:2:bbbb", Clock(two.now))
        who.local = local
        await who.step()
        assert who.leads() is leads, (holder, local)
    assert role_lines(caplog) == [f"became leader (token 6): {dead}, which held the lease, "
                                  "is gone"]


async def test_a_stale_token_claims_no_outbox_row(db_target: str) -> None:
    """B's clock runs ahead, so it takes the lease while A still believes it leads (its
    local deadline has not passed): the claim's own transaction refuses A."""
    pair = Two(db_target)
    await pair.open(skew_b=LEASE)
    try:
        await pair.a.step()
        db_a, db_b = pair.dbs
        async with db_a.write() as conn:
            await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=CHAT, now=T0,
                                 payload={"text": "hi"})
        await pair.b.step()
        assert pair.a.leads() and pair.b.token == 2

        session_a, session_b = RecordingSession(), RecordingSession()

        async def no_card(*_: Any) -> Any:
            raise AssertionError("no card here")

        stale = DeliveryWorker(db_a, Bot("42:TEST", session=session_a), no_card,
                               fence=pair.a.holds)
        assert await stale.run_once() is False
        assert session_a.requests == []
        async with db_a.read() as conn:
            assert await outbox.counts(conn) == {"pending": 1}

        session_b.add(200, OK_MESSAGE)
        leader = DeliveryWorker(db_b, Bot("42:TEST", session=session_b), no_card,
                                fence=pair.b.holds)
        assert await leader.run_once() is True
        assert session_b.methods == ["sendMessage"]
        async with db_b.read() as conn:
            assert await outbox.counts(conn) == {"done": 1}
    finally:
        await pair.close()


class CountingExecutor:
    def __init__(self) -> None:
        self.runs = 0

    async def run(self, action: Action, *, incident_id: str | None = None,
                  decision_id: int | None = None) -> Any:
        self.runs += 1
        return ExecutionResult(ok=True, dry_run=True, argv=["true"], output="ok")


async def test_a_stale_token_starts_no_execution(db_target: str) -> None:
    pair = Two(db_target)
    await pair.open(skew_b=LEASE)
    try:
        await pair.a.step()
        db_a, db_b = pair.dbs
        proposal = Proposal(
            action=Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop"),
            risk=Risk.MEDIUM, summary="restart", reasoning="r")
        async with db_a.write() as conn:
            await repo.insert_incident(conn, make_incident())
            decision_id = await repo.insert_decision(conn, "INC-7K3F9Q", T0)
            await transitions.compare_and_set(conn, decision_id, [DecisionState.ANALYZING],
                                              DecisionState.APPROVED, T0, proposal=proposal)
        await pair.b.step()
        voice = Voice("en", "UTC")
        executor = CountingExecutor()
        stale = ExecutionRunner(db_a, executor, lambda: T0, voice, fence=pair.a.holds)
        assert await stale.execute(decision_id) is False
        async with db_a.read() as conn:
            decision = await repo.get_decision(conn, decision_id)
        assert decision is not None and decision.state is DecisionState.APPROVED
        assert executor.runs == 0

        leader = ExecutionRunner(db_b, executor, lambda: T0, voice, fence=pair.b.holds)
        assert await leader.execute(decision_id) is True
        assert await stale.execute(decision_id) is False
        assert executor.runs == 1
    finally:
        await pair.close()


class LeaseMachine(RuleBasedStateMachine):
    """Any order of looks, releases and time passing, with the same clock everywhere:
    never two processes that may call Telegram at once, and every token taken is above
    every token taken before."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pair: Two | None = None
        self.tokens: list[int] = []

    @initialize()
    def open(self) -> None:
        import tempfile
        self.tmp = tempfile.TemporaryDirectory()
        self.pair = Two(str(Path(self.tmp.name) / "lease.db"))
        self.loop.run_until_complete(self.pair.open())

    def _who(self, which: int) -> Leadership:
        assert self.pair is not None
        return self.pair.a if which == 0 else self.pair.b

    @rule(which=st.integers(0, 1))
    def step(self, which: int) -> None:
        who = self._who(which)
        before = who.token
        self.loop.run_until_complete(who.step())
        if who.token is not None and who.token != before:
            assert not self.tokens or who.token > max(self.tokens)
            self.tokens.append(who.token)

    @rule(which=st.integers(0, 1))
    def release(self, which: int) -> None:
        self.loop.run_until_complete(self._who(which).release())

    @rule(seconds=st.floats(0.0, 2 * LEASE))
    def advance(self, seconds: float) -> None:
        assert self.pair is not None
        self.pair.advance(seconds)

    @invariant()
    def one_may_call_at_most(self) -> None:
        if self.pair is not None:
            assert not (self.pair.a.leads() and self.pair.b.leads())

    @invariant()
    def the_row_holds_the_last_token(self) -> None:
        if self.pair is not None and self.tokens:
            row = self.loop.run_until_complete(self.pair.row())
            assert row is not None and row.token == self.tokens[-1]

    def teardown(self) -> None:
        if self.pair is not None:
            self.loop.run_until_complete(self.pair.close())
            self.tmp.cleanup()
        self.loop.close()


LeaseMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30,
                                          deadline=None)
test_lease_machine = LeaseMachine.TestCase
