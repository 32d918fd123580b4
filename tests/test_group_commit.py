"""Group commit: webhooks that arrive together share one write transaction, each answered
only after the commit that holds its alerts; one payload failing spoils none of the others;
a kill in the middle of a batch leaves no 2xx without its alerts and nothing half-written.

Batching is counted (commits), never timed: the tests hold the writer while the webhooks
queue, so they are sure to arrive together.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
from bot_process import BotProcess
from harness import Harness

from benchmarks.ingest_throughput import body
from benchmarks.ingest_work import CTX
from bot.alerts import intake as intake_module
from bot.alerts import payloads
from bot.alerts.ingest import IngestResult, accept_in
from bot.alerts.intake import Intake
from bot.models import AlertGroup
from handlers.alerts import INTAKE
from sandbox.emulator import wait_for
from storage import repo
from storage.db import Database, StorageUnavailable
from storage.repo.sql import fetch_all

NOW = datetime(2026, 11, 27, 13, 30, tzinfo=UTC)
SIGKILL_EXIT = -9


def payload(tag: str, i: int, alerts: int = 3) -> bytes:
    """Request i of a run: its own group, `alerts` new fingerprints."""
    return body(tag, alerts, "new", i)


def fingerprints(raw: bytes) -> set[str]:
    return {a["fingerprint"] for a in json.loads(raw)["alerts"]}


def group(raw: bytes) -> AlertGroup:
    return payloads.parse("alertmanager", raw, NOW)


async def stored(db: Database) -> set[str]:
    async with db.read() as conn:
        return {r[0] for r in await fetch_all(conn, "SELECT fingerprint FROM alerts")}


async def held_while_queued(db: Database, intake: Intake, n: int) -> None:
    """Hold the writer until `n` payloads wait in the intake, so one batch takes them all."""
    async with db.write():
        await wait_for(lambda: intake.queued == n, 15, message="the webhooks did not queue")


@contextmanager
def failing_for(tag: str, exc: BaseException) -> Iterator[None]:
    """accept_in raises `exc` for groups whose key holds `tag`, after storing them: the
    savepoint must undo what it wrote."""
    mp = pytest.MonkeyPatch()

    async def accept_then_fail(conn: repo.Conn, g: AlertGroup, *args: Any) -> IngestResult:
        result = await accept_in(conn, g, *args)
        if tag in g.group_key:
            raise exc
        return result

    mp.setattr(intake_module, "accept_in", accept_then_fail)
    try:
        yield
    finally:
        mp.undo()


async def test_webhooks_arriving_together_share_one_commit_and_a_bad_one_is_refused_alone(
    app: Harness,
) -> None:
    assert app.app.runner is not None
    intake = app.app.runner.app[INTAKE]
    good = [payload("together", i) for i in range(6)]
    bad = json.loads(payload("together", 99))
    del bad["alerts"][0]["startsAt"]  # refused by validation, before the intake
    bodies = [*good[:3], json.dumps(bad).encode(), *good[3:]]
    before = intake.commits
    send = [asyncio.create_task(app.post("/alerts/alertmanager", b)) for b in bodies]
    await held_while_queued(app.db, intake, len(good))
    answers = await asyncio.gather(*send)

    assert [status for status, _ in answers] == [200, 200, 200, 400, 200, 200, 200]
    assert "startsAt" in answers[3][1]["error"]
    assert intake.commits - before == 1  # six webhooks, one transaction
    everything = await stored(app.db)
    assert set().union(*map(fingerprints, good)) <= everything
    assert not fingerprints(json.dumps(bad).encode()) & everything


async def test_a_payload_whose_ingest_fails_is_undone_alone(db: Database) -> None:
    intake = Intake(db, CTX)
    bodies = [payload("ok", i) for i in range(3)] + [payload("boom", 0)]
    with failing_for("boom", sqlite3.IntegrityError("UNIQUE constraint failed")):
        send = [asyncio.create_task(intake.accept(group(b), NOW, len(b))) for b in bodies]
        await held_while_queued(db, intake, len(bodies))
        answers = await asyncio.gather(*send, return_exceptions=True)

    assert [type(a) for a in answers] == [IngestResult] * 3 + [sqlite3.IntegrityError]
    assert intake.commits == 1
    everything = await stored(db)
    assert set().union(*map(fingerprints, bodies[:3])) == everything  # boom's are undone
    async with db.read() as conn:
        incidents = await repo.open_incidents(conn)
    assert sorted(i.id for i in incidents) == sorted(
        a.opened[0] for a in answers if isinstance(a, IngestResult))


async def test_a_bug_in_one_payload_does_not_fail_its_batch(db: Database) -> None:
    intake = Intake(db, CTX)
    bodies = [payload("bug", 0), payload("fine", 0)]
    with failing_for("bug", RuntimeError("a bug")):
        send = [asyncio.create_task(intake.accept(group(b), NOW, len(b))) for b in bodies]
        await held_while_queued(db, intake, len(bodies))
        answers = await asyncio.gather(*send, return_exceptions=True)
    assert isinstance(answers[0], RuntimeError) and isinstance(answers[1], IngestResult)
    assert await stored(db) == fingerprints(bodies[1])


async def test_storage_failing_fails_the_whole_batch_and_writes_nothing(db: Database) -> None:
    intake = Intake(db, CTX)
    bodies = [payload("disk", i) for i in range(3)]
    full: Exception = (sqlite3.OperationalError("disk I/O error") if db.dialect == "sqlite"
                       else asyncpg.DiskFullError("could not extend file"))
    with failing_for("disk-2", full):
        send = [asyncio.create_task(intake.accept(group(b), NOW, len(b))) for b in bodies]
        await held_while_queued(db, intake, len(bodies))
        answers = await asyncio.gather(*send, return_exceptions=True)
    assert [type(a) for a in answers] == [StorageUnavailable] * 3
    assert intake.commits == 0
    assert await stored(db) == set()
    # The next webhook is stored as usual.
    assert (await intake.accept(group(bodies[0]), NOW, len(bodies[0]))).opened


async def test_a_batch_is_bounded_by_payloads_and_bytes(db: Database) -> None:
    one = len(payload("bound", 0))
    intake = Intake(db, CTX, max_payloads=3, max_bytes=one * 5)
    bodies = [payload("bound", i) for i in range(7)]
    send = [asyncio.create_task(intake.accept(group(b), NOW, len(b))) for b in bodies]
    await held_while_queued(db, intake, len(bodies))
    await asyncio.gather(*send)
    assert intake.commits == 3  # 3 + 3 + 1
    bytes_bound = Intake(db, CTX, max_bytes=one * 2)
    bodies = [payload("bytes", i) for i in range(4)]
    send = [asyncio.create_task(bytes_bound.accept(group(b), NOW, len(b))) for b in bodies]
    await held_while_queued(db, bytes_bound, len(bodies))
    await asyncio.gather(*send)
    assert bytes_bound.commits == 2  # 2 + 2


def _incidents_consistent(botproc: BotProcess) -> None:
    """Each incident's counts are its alerts', and it has its card row: nothing of a
    payload was written without the rest."""
    for inc_id, firing, resolved in botproc.rows(
            "SELECT id, firing_count, resolved_count FROM incidents"):
        actual = dict(botproc.rows(
            "SELECT status, COUNT(*) FROM alerts WHERE incident_id = ? GROUP BY status",
            (inc_id,)))
        assert (firing, resolved) == (actual.get("firing", 0), actual.get("resolved", 0))
        kept = dict(botproc.rows(
            "SELECT status, SUM(n) FROM incident_alert_counts WHERE incident_id = ? "
            "GROUP BY status", (inc_id,)))
        assert {k: v for k, v in kept.items() if v} == actual
        assert botproc.rows("SELECT COUNT(*) FROM cards WHERE incident_id = ?",
                            (inc_id,)) == [(1,)]
    assert botproc.rows(
        "SELECT COUNT(*) FROM alerts WHERE incident_id NOT IN (SELECT id FROM incidents)"
    ) == [(0,)]


async def _post(url: str, raw: bytes) -> int | None:
    """The answer's status; None when the connection died first."""
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/alerts/alertmanager", data=raw,
                                 headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                return resp.status
    except aiohttp.ClientError:
        return None


async def test_killed_in_the_middle_of_a_batch_no_2xx_without_its_alerts(
    botproc: BotProcess,
) -> None:
    await botproc.start(OPSGATE_FAULT="intake.batch")
    answered: dict[bytes, int | None] = {}
    # Rounds of webhooks sent at once, until one batch holds two of them: the process
    # kills itself there, before that batch's COMMIT.
    for round_no in range(40):
        if botproc.proc is not None and botproc.proc.returncode is not None:
            break
        bodies = [payload(f"kill{round_no}x", i) for i in range(8)]
        statuses = await asyncio.gather(*(_post(botproc.url, b) for b in bodies))
        answered.update(zip(bodies, statuses, strict=True))
    assert await botproc.exited() == SIGKILL_EXIT

    present = {r[0] for r in botproc.rows("SELECT fingerprint FROM alerts")}
    missing = []
    for raw, status in answered.items():
        mine = fingerprints(raw)
        assert mine <= present or not mine & present  # a payload is stored whole or not
        if status is not None and status < 300:
            assert mine <= present  # every 2xx'd payload was committed
        if not mine & present:
            assert status is None  # never a 2xx for a payload not committed
            missing.append(raw)
    assert len(missing) >= 2  # the batch killed before its COMMIT held two at least
    _incidents_consistent(botproc)

    # The senders retry what got no answer; the bot, restarted, stores it.
    await botproc.start()
    statuses = await asyncio.gather(*(_post(botproc.url, raw) for raw in missing))
    assert statuses == [200] * len(missing)
    present = {r[0] for r in botproc.rows("SELECT fingerprint FROM alerts")}
    assert set().union(*map(fingerprints, answered)) <= present
    _incidents_consistent(botproc)
    assert await botproc.terminate() == 0


async def test_a_writer_cancelled_as_it_begins_leaves_no_transaction_open(
        db: Database) -> None:
    """A stage stopping cancels its writer wherever it is; BEGIN already handed to the
    connection's thread runs anyway, and the next writer (delivery's done mark on a SIGTERM)
    must still find the connection free."""
    async def write() -> None:
        async with db.write() as conn:
            await conn.execute("SELECT 1")

    stopped = asyncio.create_task(write())
    await asyncio.sleep(0)  # its BEGIN is on its way to the connection's thread
    stopped.cancel()
    assert [type(r) for r in await asyncio.gather(stopped, return_exceptions=True)] == [
        asyncio.CancelledError]
    async with db.write() as conn:
        await conn.execute("SELECT 1")
