"""Retention on a real SQLite file: what pruning deletes (an old resolved incident and every
row of it, old audit and delivered outbox rows) and what it keeps (open incidents, recent
ones, audit rows younger than their own retention)."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import ALICE, AppFactory, Harness, fixture
from pydantic import ValidationError

from bot.config import Settings
from bot.retention import Retention, prune
from sandbox.emulator import wait_for

KEEP = Retention(resolved_incidents=timedelta(days=180), audit=timedelta(days=400),
                 delivered_outbox=timedelta(days=30))
# Tables holding rows of one incident, and the column that names it.
PER_INCIDENT = {"alerts": "incident_id", "cards": "incident_id", "decisions": "incident_id",
                "outbox": "incident_id"}


def resolved(payload: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(payload)
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-27T14:00:00Z"
    return body


async def count(app: Harness, sql: str, *args: Any) -> int:
    async with app.db.read() as conn:
        async with conn.execute(sql, args) as cur:
            row = await cur.fetchone()
    return int(row[0]) if row else 0


async def rows_of(app: Harness, incident_id: str) -> dict[str, int]:
    out = {t: await count(app, f"SELECT COUNT(*) FROM {t} WHERE {c} = ?", incident_id)
           for t, c in PER_INCIDENT.items()}
    out["approvals"] = await count(
        app, "SELECT COUNT(*) FROM approvals a JOIN decisions d ON d.id = a.decision_id "
             "WHERE d.incident_id = ?", incident_id)
    out["audit"] = await count(app, "SELECT COUNT(*) FROM audit WHERE incident_id = ?",
                               incident_id)
    out["incidents"] = await count(app, "SELECT COUNT(*) FROM incidents WHERE id = ?",
                                   incident_id)
    return out


async def approved_and_resolved(app: Harness) -> str:
    """An incident with a card, an approved (dry-run) decision, audit rows, then resolved."""
    firing = fixture("crashloop-firing.json")
    body = await app.alert("crashloop-firing.json")
    incident = body["incidents"][0]
    card = await app.wait_card(lambda m: "Approve" in json.dumps(m.get("reply_markup")))
    await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    status, _ = await app.post("/alerts/alertmanager", resolved(firing))
    assert status == 200
    await app.settled()
    return str(incident)


async def test_prune_deletes_an_old_resolved_incident_with_all_its_rows(app: Harness) -> None:
    old = await approved_and_resolved(app)
    open_ = (await app.alert("two-alerts-firing.json"))["incidents"][0]
    await app.settled()
    before = await rows_of(app, old)
    assert all(before[t] for t in (*PER_INCIDENT, "approvals", "audit", "incidents")), before
    kept_before = await rows_of(app, open_)

    now = datetime.now(UTC)
    # Resolved a day ago: kept (only the handled press, a day old, is gone from the inbox).
    assert await prune(app.db, KEEP, now + timedelta(days=1, seconds=1)) == {"inbox": 1}
    assert await rows_of(app, old) == before

    deleted = await prune(app.db, KEEP, now + timedelta(days=181))
    after = await rows_of(app, old)
    assert {t: n for t, n in after.items() if t != "audit"} == dict.fromkeys(
        [*PER_INCIDENT, "approvals", "incidents"], 0)
    assert after["audit"] == before["audit"], "audit rows have their own retention"
    assert deleted["incidents"] == 1 and deleted["alerts"] == before["alerts"]
    kept_after = await rows_of(app, open_)
    # Its delivered messages are older than RETAIN_DELIVERED_OUTBOX by then; the rest stays.
    assert kept_after.pop("outbox") == 0 < kept_before.pop("outbox")
    assert kept_after == kept_before, "a firing incident is never pruned"

    # Past the audit retention the audit rows go too, and the delivered outbox rows of
    # the open incident are older than 30 days by then.
    deleted = await prune(app.db, KEEP, now + timedelta(days=401))
    assert deleted["audit"] >= before["audit"]
    assert await count(app, "SELECT COUNT(*) FROM audit WHERE at < ?",
                       (now + timedelta(days=1)).isoformat()) == 0
    assert await count(app, "SELECT COUNT(*) FROM outbox WHERE state = 'done'") == 0
    assert await count(app, "SELECT COUNT(*) FROM incidents WHERE id = ?", open_) == 1


async def test_prune_follows_foreign_keys_of_tables_it_does_not_know(app: Harness) -> None:
    old = await approved_and_resolved(app)
    # A table a later migration might add, pointing at incidents (and one level deeper).
    async with app.db.write() as conn:
        await conn.execute("CREATE TABLE acks (id INTEGER PRIMARY KEY, "
                           "incident_id TEXT NOT NULL REFERENCES incidents(id), who TEXT)")
        await conn.execute("CREATE TABLE ack_notes (ack_id INTEGER NOT NULL REFERENCES acks, "
                           "note TEXT)")
        await conn.execute("INSERT INTO acks (id, incident_id, who) VALUES (1, ?, 'alice')",
                           (old,))
        await conn.execute("INSERT INTO ack_notes (ack_id, note) VALUES (1, 'looking')")

    deleted = await prune(app.db, KEEP, datetime.now(UTC) + timedelta(days=181))
    assert deleted["acks"] == 1 and deleted["ack_notes"] == 1 and deleted["incidents"] == 1
    assert await count(app, "SELECT COUNT(*) FROM acks") == 0


async def test_zero_keeps_forever(app: Harness) -> None:
    old = await approved_and_resolved(app)
    forever = Retention(resolved_incidents=timedelta(0), audit=timedelta(0),
                        delivered_outbox=timedelta(0))
    deleted = await prune(app.db, forever, datetime.now(UTC) + timedelta(days=3650))
    # Handled Telegram updates are plumbing, not history: they go after a day regardless.
    assert deleted == {"inbox": 1}
    assert (await rows_of(app, old))["incidents"] == 1


async def test_the_running_app_prunes_on_its_own(
    start_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.retention")
    app = await start_app(retain_delivered_outbox="1s", prune_interval="1s")
    await app.alert("crashloop-firing.json")
    await app.wait_card()
    await app.settled()

    def pruned_outbox() -> bool:
        return any("retention: deleted" in r.getMessage() and "outbox" in r.getMessage()
                   for r in caplog.records)

    async def delivered_rows_gone() -> bool:
        # The log line first: before the card's row is done there is nothing to prune, and
        # no row in 'done' would pass for pruned.
        return pruned_outbox() and await count(
            app, "SELECT COUNT(*) FROM outbox WHERE state = 'done'") == 0

    await wait_for(delivered_rows_gone, 15, message="delivered outbox rows were not pruned")
    assert app.cards(), "the card was delivered (so its outbox row had been done)"


def test_retention_settings() -> None:
    keep = Settings(_env_file=None, retain_audit="0", retain_resolved_incidents="90d")  # type: ignore[call-arg]
    assert keep.retain_audit == timedelta(0) and keep.retain_resolved_incidents.days == 90
    assert Settings(_env_file=None).retain_delivered_outbox == timedelta(days=30)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least 1s"):
        Settings(_env_file=None, prune_interval="0s")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="must not be negative"):
        Settings(_env_file=None, retain_audit=-1)  # type: ignore[call-arg]
