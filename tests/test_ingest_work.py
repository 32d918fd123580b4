"""Ingestion does work in proportion to what changed, not to the size of the incident.

Counted, not timed (timing on a shared 2-core machine proves nothing): SQLite VM steps on
the write connection (a progress handler at every instruction) and rows fetched into
Python, for the same 50-alert re-delivery into an incident of 50 and one of 5,000 alerts.
The counts and severity the card shows must still be right.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.ingest_work import (
    CHAT,
    CTX,
    T0,
    alert,
    group,
    incident_of,
    measure_work,
    redelivery,
)
from bot.alerts.ingest import accept
from bot.models import Actor, AlertStatus, Incident, Matcher, Silence
from bot.silences.service import SilenceService
from storage import repo
from storage.db import Database, _migrations, _split_sql


async def incident(db: Database) -> Incident:
    async with db.read() as conn:
        (inc,) = await repo.open_incidents(conn)
    return inc


ALICE = Actor(user_id=111, name="@alice", chat_id=CHAT)
# Matches every pod but the one redelivery() adds: made before it, it keeps the incident
# quiet until then, and the re-delivery must find out without reading every alert.
ALL_BUT_NEW = [Matcher(name="pod", value="cart-0.*", is_regex=True)]


async def silence(db: Database, matchers: list[Matcher], at: datetime) -> str:
    service = SilenceService(db, lambda: at, "en", "UTC")
    created = await service.create(ALICE, CHAT, matchers, at + timedelta(days=1), "test")
    return created.silence.id


async def card_silence(db: Database, inc: Incident) -> str | None:
    async with db.read() as conn:
        card = await repo.get_card(conn, inc.id, CHAT)
    assert card is not None
    return card.silence_id


async def test_a_redelivery_costs_the_same_into_50_and_5000_alerts() -> None:
    work = {}
    for size in (50, 5000):
        async with incident_of(size) as db:
            quiet = await silence(db, ALL_BUT_NEW, T0)
            assert await card_silence(db, await incident(db)) == quiet
            body = redelivery()
            changing = await measure_work(db, body, T0 + timedelta(minutes=1))
            same = await measure_work(db, body, T0 + timedelta(minutes=2))
            inc = await incident(db)
            # one resolved, one new: the counts follow what changed
            assert (inc.firing_count, inc.resolved_count) == (size, 1)
            assert inc.severity == "critical"
            assert await card_silence(db, inc) is None  # the new pod is not silenced
        work[size] = (changing, same)
    for small, large in zip(work[50], work[5000], strict=True):
        assert large.rows == small.rows
        # B-tree depth is inside one VM instruction, so the steps hardly move; a reload of
        # the incident's alerts would add tens of steps per alert (over 100,000 here).
        assert abs(large.steps - small.steps) <= 50, (small, large)
    assert work[50][0].steps < 20_000


async def test_counts_and_severity_follow_every_change(db: Database) -> None:
    alerts = [alert(i) for i in range(6)]  # severities warning, critical, info, ...
    await accept(db, group(alerts), CTX, T0)
    inc = await incident(db)
    assert (inc.firing_count, inc.resolved_count, inc.severity) == (6, 0, "critical")

    # The critical ones resolve: the severity is that of what still fires.
    resolved = [alert(i, AlertStatus.RESOLVED) if i % 3 == 1 else alert(i) for i in range(6)]
    await accept(db, group(resolved), CTX, T0 + timedelta(minutes=1))
    inc = await incident(db)
    assert (inc.firing_count, inc.resolved_count, inc.severity) == (4, 2, "warning")
    # A late "firing" of a resolved episode (a retried older notification) changes nothing.
    await accept(db, group([alert(1)]), CTX, T0 + timedelta(minutes=1, seconds=30))
    inc = await incident(db)
    assert (inc.firing_count, inc.resolved_count, inc.severity) == (4, 2, "warning")

    # The same alert twice in one payload is one alert.
    await accept(db, group([alert(7), alert(7)]), CTX, T0 + timedelta(minutes=2))
    inc = await incident(db)
    assert (inc.firing_count, inc.resolved_count) == (5, 2)

    # Everything resolves: the incident does, at the last end, with the severity of all.
    ends = [alert(i, AlertStatus.RESOLVED) for i in (*range(6), 7)]
    await accept(db, group(ends), CTX, T0 + timedelta(minutes=3))
    async with db.read() as conn:
        assert await repo.open_incidents(conn) == []
        done = await repo.get_incident(conn, inc.id)
    assert done is not None
    assert (done.firing_count, done.resolved_count, done.severity) == (0, 7, "critical")
    assert done.resolved_at == T0 + timedelta(hours=1)


async def test_an_incident_stored_before_the_counts_table_keeps_counting(
    tmp_path: Path
) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    await db.open()
    await accept(db, group([alert(i) for i in range(5)]), CTX, T0)
    await accept(db, group([alert(1, AlertStatus.RESOLVED)]), CTX, T0 + timedelta(minutes=1))
    await db.close()
    # The alerts as the version before 009_incident_counts.sql left them, then 009 itself
    # (the later migrations are about other tables: running them again would fail).
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE incident_alert_counts")
    conn.execute("DROP TABLE incident_silence_misses")
    conn.execute("DROP INDEX alerts_incident_end")
    counts_migration = next(sql for version, _, sql in _migrations() if version == 9)
    for statement in _split_sql(counts_migration):
        conn.execute(statement)
    conn.commit()
    conn.close()

    db = Database(path)
    await db.open()
    try:
        async with db.read() as reader:
            inc = await incident(db)
            assert await repo.alert_counts(reader, inc.id) == {
                ("firing", "warning"): 2, ("firing", "info"): 1, ("firing", "critical"): 1,
                ("resolved", "critical"): 1}
        await accept(db, group([alert(4, AlertStatus.RESOLVED)]), CTX, T0 + timedelta(minutes=2))
        inc = await incident(db)
        assert (inc.firing_count, inc.resolved_count, inc.severity) == (3, 2, "warning")
    finally:
        await db.close()


async def test_silence_coverage_follows_each_change_without_rereading(db: Database) -> None:
    await accept(db, group([alert(i) for i in range(4)]), CTX, T0)
    inc = await incident(db)
    # Made outside the chat's commands (as before counts were kept): counted at first need.
    legacy = Silence(id="S-LEGACY", matchers=[Matcher(name="pod", value="cart-0000[0-3]",
                                                      is_regex=True)],
                     reason="", created_by="@alice", created_by_id=111, starts_at=T0,
                     ends_at=T0 + timedelta(days=1))
    async with db.write() as conn:
        await repo.insert_silence(conn, legacy)
    await accept(db, group([alert(0)]), CTX, T0 + timedelta(minutes=1))
    assert await card_silence(db, inc) == "S-LEGACY"
    # A pod it does not match fires: loud; it resolves: quiet again.
    await accept(db, group([alert(4)]), CTX, T0 + timedelta(minutes=2))
    assert await card_silence(db, inc) is None
    await accept(db, group([alert(4, AlertStatus.RESOLVED)]), CTX, T0 + timedelta(minutes=3))
    assert await card_silence(db, inc) == "S-LEGACY"
    # One sent twice in one payload is counted once: resolving it once clears it.
    await accept(db, group([alert(5), alert(5)]), CTX, T0 + timedelta(minutes=4))
    assert await card_silence(db, inc) is None
    await accept(db, group([alert(5, AlertStatus.RESOLVED)]), CTX, T0 + timedelta(minutes=5))
    assert await card_silence(db, inc) == "S-LEGACY"
    # A silence made in the chat is counted when it is made, and the longest one wins.
    longer = await silence(db, [Matcher(name="namespace", value="shop")],
                           T0 + timedelta(minutes=6))
    assert await card_silence(db, inc) == "S-LEGACY"  # the mark stays while it covers
    await accept(db, group([alert(6)]), CTX, T0 + timedelta(minutes=7))
    assert await card_silence(db, inc) == longer  # pod 6 is outside the legacy one
