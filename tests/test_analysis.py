"""The analysis worker when the engine itself fails: an invalid decision, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import fixture

from bot.alerts.ingest import IngestContext, accept
from bot.alerts.payloads import parse
from bot.alerts.routing import load_routes
from bot.cards.notes import Voice
from bot.decisions.analysis import AnalysisWorker
from bot.models import Alert, DecisionState, Incident
from storage import repo
from storage.db import Database

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


class BrokenEngine:
    async def analyze(self, incident: Incident, alerts: list[Alert]) -> object:
        raise RuntimeError("boom")


@pytest.mark.parametrize(("locale", "expected"), [("en", "analysis failed: boom"),
                                                  ("zh-TW", "分析失敗：boom")])
async def test_engine_failure_becomes_an_invalid_decision(tmp_path: Path, locale: str,
                                                         expected: str) -> None:
    db = Database(tmp_path / "w.db")
    await db.open()
    try:
        ctx = IngestContext(routes=load_routes(None, -100, [1]), group_by=("alertname",),
                            locale=locale, tz_name="UTC")
        group = parse("alertmanager", json.dumps(fixture("single-firing.json")).encode(), NOW)
        inc_id = (await accept(db, group, ctx, NOW)).opened[0]
        worker = AnalysisWorker(db, BrokenEngine(), lambda: NOW, Voice(locale, "UTC"))
        assert await worker.analyze_pending() == 1
        assert await worker.analyze_pending() == 0  # already under way
        await worker.drain()
        async with db.read() as conn:
            decision = await repo.current_decision(conn, inc_id)
        assert decision is not None and decision.state is DecisionState.INVALID
        assert decision.invalid_reason == expected
    finally:
        await db.close()
