"""Delivery lanes: what people wait for goes before new cards (higher severity first),
which go before edits nobody asked for; per-incident order holds.

The queue on its own (a real SQLite file), then the real app in a storm against the
emulator with Telegram's flood control, scaled in time (same shape)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

from harness import ALICE, CHAT, AppFactory, Harness, fixture, say
from test_pacing import SPEED, chat_writes, post_incidents, scaled_settings

from bot.models import DecisionState, severity_rank
from bot.telegram import delivery
from sandbox.emulator import FloodLimits, wait_for
from storage import outbox, repo
from storage.db import Database

T0 = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


async def queue(db: Database, incident: str | None, kind: str, lane: int = outbox.BACKGROUND,
                *, people: bool = False) -> int | None:
    async with db.write() as conn:
        if people:
            with outbox.people_waiting():
                return await outbox.enqueue(conn, kind=kind, chat_id=CHAT, now=T0,
                                            incident_id=incident, lane=lane)
        return await outbox.enqueue(conn, kind=kind, chat_id=CHAT, now=T0,
                                    incident_id=incident, lane=lane)


async def due_ids(db: Database) -> list[int]:
    async with db.read() as conn:
        return [item.id for item in await outbox.due(conn, T0.timestamp() + 1)]


async def test_people_then_new_cards_by_severity_then_background(db: Database) -> None:
    edit = await queue(db, "INC-EDIT", outbox.CARD)
    warning = await queue(db, "INC-WARN", outbox.CARD,
                          outbox.new_card_lane(severity_rank("warning")))
    critical = await queue(db, "INC-CRIT", outbox.CARD,
                           outbox.new_card_lane(severity_rank("critical")))
    info = await queue(db, "INC-INFO", outbox.CARD, outbox.new_card_lane(severity_rank("info")))
    answer = await queue(db, None, outbox.MESSAGE, people=True)
    assert await due_ids(db) == [answer, critical, warning, info, edit]


async def test_a_row_for_someone_lifts_what_its_incident_queued_before(db: Database) -> None:
    backlog = [await queue(db, f"INC-{i}", outbox.CARD, outbox.new_card_lane(3))
               for i in range(5)]
    edit = await queue(db, "INC-X", outbox.CARD)  # nobody asked for this one
    note = await queue(db, "INC-X", outbox.REPLY, people=True)  # a press's thread note
    # The note waits for the incident's card edit, and that edit now goes first.
    assert await due_ids(db) == [edit, *backlog]
    async with db.write() as conn:
        assert await outbox.claim(conn, edit)  # type: ignore[arg-type]
        await outbox.mark_done(conn, edit)  # type: ignore[arg-type]
    assert await due_ids(db) == [note, *backlog]


async def test_a_press_on_a_card_with_a_pending_edit_lifts_that_edit(db: Database) -> None:
    backlog = await queue(db, "INC-NEW", outbox.CARD, outbox.new_card_lane(3))
    edit = await queue(db, "INC-X", outbox.CARD)
    # The press's own sync collapses into the pending one, which now goes first.
    assert await queue(db, "INC-X", outbox.CARD, people=True) is None
    assert await due_ids(db) == [edit, backlog]


# ------------------------------------------------------------------ in a storm


def replied_to(call: dict[str, Any]) -> int | None:
    reply = call["params"].get("reply_parameters")
    if isinstance(reply, str):
        reply = json.loads(reply)
    return int(reply["message_id"]) if reply else None


def first_ok(calls: list[dict[str, Any]], method: str, **params: Any) -> dict[str, Any]:
    return next(c for c in calls if c["ok"] and c["method"] == method and all(
        str(c["params"].get(k)) == str(v) for k, v in params.items()))


async def test_in_a_storm_a_press_and_a_command_go_before_the_backlog(
        start_app: AppFactory) -> None:
    h: Harness = await start_app(**scaled_settings())
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    incidents = 60
    await post_incidents(h, incidents)
    # A card that shows its proposal (a press on an "Analyzing…" card is out of date).
    card = await h.wait_card(lambda m: "Analyzing" not in m["text"], 30)
    pressed_at = time.time()
    qid = await h.press(card["message_id"], "Ack", ALICE)
    edited = await wait_for(lambda: "Acknowledged" in h.em.message(CHAT, card["message_id"])
                            ["text"], 30)
    assert edited
    answer = await say(h, ALICE, "/whoami")
    await wait_for(lambda: len(h.cards()) == incidents, 60)
    await h.settled(timeout=30)

    calls = chat_writes(h)
    assert [c for c in calls if c["error_code"] == 429] == []
    new_cards = [c["at"] for c in calls if c["ok"] and c["method"] == "sendMessage"
                 and not c["params"].get("reply_parameters")]
    answered = first_ok(h.em.calls(), "answerCallbackQuery", callback_query_id=qid)
    edit = next(c for c in calls if c["ok"] and c["method"] == "editMessageText"
                and str(c["params"]["message_id"]) == str(card["message_id"])
                and "Acknowledged" in c["params"]["text"])
    note = next(c for c in calls if c["ok"] and c["method"] == "sendMessage"
                and replied_to(c) == card["message_id"])
    reply = first_ok(calls, "sendMessage", text=answer["html"])
    # The card edit, then its thread note (the incident's order), and the command's answer
    # went out while new cards were still waiting...
    assert edit["at"] < note["at"] < max(new_cards)
    assert reply["at"] < max(new_cards)
    # ... and once queued, at most the new cards already on their way went ahead of them (in
    # the order they were queued, the whole backlog before them would have).
    edit_queued, reply_queued = await people_rows_queued_at(h)
    # The press's answer is the handler's own call, queued behind nothing: while it was on its
    # way (handler and inbox on a loaded machine) only a small part of the backlog went.
    waiting = len([t for t in new_cards if t > pressed_at])
    assert len([t for t in new_cards if pressed_at < t < answered["at"]]) <= waiting // 5
    assert len([t for t in new_cards if edit_queued < t < edit["at"]]) <= 2
    assert len([t for t in new_cards if reply_queued < t < reply["at"]]) <= 2


async def people_rows_queued_at(h: Harness) -> tuple[float, float]:
    """When the press's card edit and the command's answer were queued (the people lane's
    card row and message row)."""
    async with h.db.read() as conn:
        async with conn.execute(
                "SELECT kind, MIN(created_at) FROM outbox WHERE lane = ? AND kind IN (?, ?)"
                " GROUP BY kind", (outbox.PEOPLE, outbox.CARD, outbox.MESSAGE)) as cur:
            queued = {r[0]: datetime.fromisoformat(r[1]).timestamp()
                      for r in await cur.fetchall()}
    return queued[outbox.CARD], queued[outbox.MESSAGE]


def incident_payload(group: int, alert: int, severity: str) -> dict[str, Any]:
    """One alert (`alert` picks its fingerprint) in incident group `group`; the alert name
    says the severity, so the card it becomes can be told apart in the emulator's log."""
    payload = fixture("single-firing.json")
    name = f"Lane{severity.title()}"
    labels = {**payload["alerts"][0]["labels"], "alertname": name, "severity": severity,
              "service": f"svc-{group}"}
    payload["groupKey"] = f"lanes-{group}"
    payload["groupLabels"] = {"alertname": name}
    payload["commonLabels"] = labels
    payload["alerts"][0].update(labels=labels, fingerprint=f"{group:08x}{alert:08x}")
    return payload


async def queued(h: Harness, kind: str, count: int) -> bool:
    """Whether `count` rows of `kind` are waiting (or on the wire)."""
    async with h.db.read() as conn:
        async with conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE kind = ? AND state IN ('pending', 'sending')",
                (kind,)) as cur:
            row = await cur.fetchone()
    return row is not None and int(row[0]) == count


async def nothing_analyzing(h: Harness) -> bool:
    async with h.db.read() as conn:
        return not await repo.decisions_in_state(conn, DecisionState.ANALYZING)


async def test_in_a_storm_the_queue_goes_people_then_new_cards_by_severity_then_edits(
        start_app: AppFactory) -> None:
    """Everything queued while Telegram holds the one call on the wire, in the order a
    first-in first-out queue would get wrong: edits of shown cards first, then new incidents
    warning, critical, info, then a command. Released, it goes people, critical, warning,
    info, then the edits."""
    h: Harness = await start_app(**scaled_settings())
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    shown = range(3)
    for g in shown:
        assert (await h.post("/alerts/alertmanager", incident_payload(g, 0, "warning")))[0] == 200
    await wait_for(lambda: len(h.cards()) == len(shown), 30)
    await h.settled(timeout=30)
    old_cards = {str(m["message_id"]) for m in h.cards()}

    h.em.hold("sendMessage")
    h.em.hold("editMessageText")
    for g in shown:  # a new alert in a shown incident: an edit nobody asked for
        assert (await h.post("/alerts/alertmanager", incident_payload(g, 1, "warning")))[0] == 200
    await wait_for(lambda: h.em.held("editMessageText") == 1, 30)  # the one on the wire
    new = {"warning": range(10, 14), "critical": range(20, 23), "info": range(30, 33)}
    for severity, groups in new.items():
        for g in groups:
            status, _ = await h.post("/alerts/alertmanager", incident_payload(g, 0, severity))
            assert status == 200
    sent = h.em.user_sends(CHAT, ALICE, "/whoami")
    new_count = sum(len(g) for g in new.values())
    await wait_for(lambda: queued(h, "card", len(shown) + new_count), 30)
    await wait_for(lambda: queued(h, "message", 1), 30)
    await wait_for(lambda: nothing_analyzing(h), 30)  # no edit of a new card is still to come
    start = len(h.em.calls())
    h.em.release("sendMessage")
    h.em.release("editMessageText")
    await wait_for(lambda: len(h.cards()) == len(shown) + new_count, 60)
    await h.settled(timeout=30)

    assert [c for c in chat_writes(h) if c["error_code"] == 429] == []

    def what(call: dict[str, Any]) -> str:
        if call["method"] == "editMessageText" and str(call["params"]["message_id"]) in old_cards:
            return "edit"
        if call["method"] == "sendMessage" and replied_to(call) == sent["message_id"]:
            return "people"
        for severity in new:
            if call["method"] == "sendMessage" and f"Lane{severity.title()}" in call["params"][
                    "text"]:
                return severity
        return f"other {call['method']}"

    # The call that was on the wire when the queue filled came before; the rest, in order:
    after = [what(c) for c in chat_writes(h, since=start) if c["ok"]]
    assert after == (["people"] + ["critical"] * 3 + ["warning"] * 4 + ["info"] * 3
                     + ["edit"] * (len(shown) - 1)), after


# ------------------------------------------------------------------ the writer's turns


async def test_delivery_writes_go_before_waiting_webhooks(db: Database) -> None:
    """A queue of ingest transactions does not hold up delivery's claim and mark."""
    order: list[str] = []

    async def write(name: str, *, urgent: bool = False) -> None:
        async with db.write(urgent=urgent):
            order.append(name)

    async with db.write():
        ingest = [asyncio.create_task(write(f"ingest-{i}")) for i in range(3)]
        await wait_for(lambda: db.writers_waiting() == 3)
        gone = asyncio.create_task(write("cancelled", urgent=True))
        await wait_for(lambda: db.writers_waiting() == 4)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        assert db.writers_waiting() == 3
        claim = asyncio.create_task(write("claim", urgent=True))
        await wait_for(lambda: db.writers_waiting() == 4)
    await asyncio.gather(*ingest, claim)
    assert order == ["claim", "ingest-0", "ingest-1", "ingest-2"]
    # Free again: the next writer goes at once.
    await write("later")
    assert db.writers_waiting() == 0



async def test_webhooks_one_after_another_leave_each_card_its_turn(
        start_app: AppFactory, monkeypatch: Any) -> None:
    """Pacing off, alerts posted one after another, each after the last one's answer: the
    next webhook is committed only after the card already due went out, so a run of webhooks
    never builds a backlog of cards behind it (they share one event loop)."""
    monkeypatch.setattr(delivery, "TURN_AT_MOST", 60.0)  # the order itself, not the cap
    h: Harness = await start_app(telegram_pacing=False, first_card_wait="0s")
    answered = []
    for i in range(20):
        payload = fixture("single-firing.json")
        payload["groupKey"] = f"group-{i}"
        payload["alerts"][0]["fingerprint"] = f"{i:016x}"
        payload["alerts"][0]["labels"]["service"] = f"svc-{i}"
        status, body = await h.post("/alerts/alertmanager", payload)
        assert status == 200, body
        answered.append(time.time())
    await wait_for(lambda: len(h.cards()) == 20, 30)
    cards = sorted(c["at"] for c in h.em.calls("sendMessage") if c["ok"]
                   and str(c["params"].get("chat_id")) == str(CHAT))
    behind = [i for i in range(1, 20) if len([t for t in cards if t <= answered[i]]) < i]
    assert behind == [], f"webhooks answered with earlier cards still unsent: {behind}"
