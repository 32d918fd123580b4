"""Grouping and re-delivery against a real SQLite file (no Telegram involved)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import fixture

from bot.alerts.ingest import IngestContext, accept
from bot.alerts.payloads import parse
from bot.alerts.routing import load_routes
from bot.models import AlertGroup, AlertStatus, DecisionState, IncidentStatus
from storage import outbox, repo
from storage.db import Database

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
CHAT = -100123
CTX = IngestContext(
    routes=load_routes(None, CHAT, [1, 2]), group_by=("alertname", "namespace", "service"),
    locale="en", tz_name="UTC",
)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "t.db")
    await database.open()
    try:
        yield database
    finally:
        await database.close()


def group(name: str, **changes: object) -> AlertGroup:
    data = fixture(name)
    data.update(changes)
    return parse("alertmanager", json.dumps(data).encode(), NOW)


async def counts(db: Database) -> dict[str, int]:
    out = {}
    async with db.read() as conn:
        for table in ("incidents", "alerts", "decisions", "outbox"):
            async with conn.execute(f"SELECT COUNT(*) FROM {table}") as cur:
                out[table] = (await cur.fetchone())[0]
    return out


async def test_new_group_opens_incident_decision_and_card_in_one_go(db: Database) -> None:
    result = await accept(db, group("two-alerts-firing.json"), CTX, NOW)
    assert len(result.opened) == 1
    async with db.read() as conn:
        inc = await repo.get_incident(conn, result.opened[0])
        decision = await repo.current_decision(conn, inc.id)
        due = await outbox.due(conn, NOW.timestamp() + 1)
    assert inc.firing_count == 2 and inc.target == "storage" and inc.namespace == "ops"
    assert inc.chat_id == CHAT and inc.status is IncidentStatus.FIRING
    assert decision.state is DecisionState.ANALYZING
    assert [(i.kind, i.incident_id) for i in due] == [("card", inc.id)]


async def test_redelivery_updates_never_duplicates(db: Database) -> None:
    first = await accept(db, group("two-alerts-firing.json"), CTX, NOW)
    before = await counts(db)
    for _ in range(5):
        again = await accept(db, group("two-alerts-firing.json"), CTX, NOW)
        assert again.opened == [] and again.incidents == first.opened
    after = await counts(db)
    # Card syncs collapse while one is pending: no outbox growth either.
    assert after == before


async def test_incident_resolves_only_when_all_alerts_resolve(db: Database) -> None:
    first = await accept(db, group("two-alerts-firing.json"), CTX, NOW)
    partial = await accept(db, group("two-alerts-one-resolved.json"), CTX, NOW)
    assert partial.resolved == []
    resolved = fixture("two-alerts-one-resolved.json")
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-27T13:30:00Z"
    resolved["status"] = "resolved"
    done = await accept(db, parse("alertmanager", json.dumps(resolved).encode(), NOW), CTX, NOW)
    assert done.resolved == first.opened
    async with db.read() as conn:
        inc = await repo.get_incident(conn, first.opened[0])
        decision = await repo.current_decision(conn, inc.id)
    assert inc.status is IncidentStatus.RESOLVED and inc.firing_count == 0
    assert decision.state is DecisionState.CANCELLED  # resolved while analyzing/pending


async def test_refire_after_resolve_opens_a_new_incident(db: Database) -> None:
    first = await accept(db, group("single-firing.json"), CTX, NOW)
    await accept(db, group("single-resolved.json"), CTX, NOW)
    # A late re-delivery of the resolution changes nothing.
    late = await accept(db, group("single-resolved.json"), CTX, NOW)
    assert late.opened == [] and late.resolved == []
    refire = fixture("single-firing.json")
    refire["alerts"][0]["startsAt"] = "2026-11-27T15:00:00Z"
    second = await accept(db, parse("alertmanager", json.dumps(refire).encode(), NOW), CTX, NOW)
    assert second.opened and second.opened != first.opened


async def test_a_late_firing_of_a_resolved_episode_leaves_it_resolved(db: Database) -> None:
    """An old "firing" of an episode that has resolved since (same fingerprint and
    startsAt: Alertmanager retried it) is an older state, not a re-fire."""
    first = await accept(db, group("single-firing.json"), CTX, NOW)
    await accept(db, group("single-resolved.json"), CTX, NOW)
    late = await accept(db, group("single-firing.json"), CTX, NOW)
    assert late.opened == [] and late.resolved == []
    async with db.read() as conn:
        inc = await repo.get_incident(conn, first.opened[0])
        assert inc is not None
        alerts = await repo.alerts_of(conn, inc.id)
    assert inc.status is IncidentStatus.RESOLVED and inc.firing_count == 0
    assert [(a.status, a.ends_at is not None) for a in alerts] == [(AlertStatus.RESOLVED, True)]


async def test_resolution_of_something_never_seen_is_ignored(db: Database) -> None:
    result = await accept(db, group("single-resolved.json"), CTX, NOW)
    assert result.opened == [] and result.incidents == []
    assert (await counts(db))["incidents"] == 0


async def test_group_key_is_the_grouping(db: Database) -> None:
    a = await accept(db, group("single-firing.json"), CTX, NOW)
    other = fixture("crashloop-firing.json")
    other["groupKey"] = fixture("single-firing.json")["groupKey"]
    joined = await accept(db, parse("alertmanager", json.dumps(other).encode(), NOW), CTX, NOW)
    # Another alert with the same groupKey joins the open incident.
    assert joined.opened == [] and joined.incidents == a.opened
    # The same firing episode posted under another group keeps its incident.
    moved = await accept(db, group("single-firing.json", groupKey="another"), CTX, NOW)
    assert moved.opened == [] and moved.incidents == a.opened
    async with db.read() as conn:
        assert (await repo.get_incident(conn, a.opened[0])).firing_count == 2
