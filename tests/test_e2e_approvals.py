"""Approvals through real buttons: emulator -> aiogram polling -> SQLite -> card edits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import Update
from harness import ALICE, BOB, CHAT, MALLORY, AppFactory, Harness
from pg import change

from bot.models import Actor, DecisionState
from sandbox.emulator import wait_for
from storage import repo

CRITICAL_RULES = """
[[rule]]
name = "crash-critical"
match_regex = { alertname = "(?i).*crash.*" }
risk = "critical"
summary = "Restart {target} in {namespace}"
reasoning = "Test rule that raises the risk to critical."
[rule.action]
verb = "rollout-restart"
target_kind = "deployment"
target_from = ["deployment"]
"""


def callbacks_clean(h: Harness) -> None:
    stats = h.em.callback_stats()
    assert stats["unanswered"] == [], stats
    assert stats["refused_answers"] == 0, stats


async def pending_card(h: Harness, name: str = "crashloop-firing.json",
                       state: str = "Awaiting approval") -> tuple[str, dict]:
    body = await h.alert(name)
    inc = body["opened"][0]
    await h.settled()
    card = await h.wait_card(lambda m: inc in m["text"] and state in m["text"])
    return inc, card


def answer_of(h: Harness, query_id: str) -> dict:
    answer = h.em.callback_answer(query_id)
    assert answer is not None
    return answer


async def test_approve_executes_dry_run_and_threads_each_step(app: Harness) -> None:
    inc, card = await pending_card(app)
    qid = await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    answer = answer_of(app, qid)
    assert answer["text"] == "Approved — executing" and not answer.get("show_alert")
    msg = app.em.message(CHAT, card["message_id"])
    assert "@alice" in msg["text"]
    labels = [b["text"] for row in msg["reply_markup"]["inline_keyboard"] for b in row]
    assert not any("Approve" in t or "Reject" in t for t in labels)
    assert any("Details" in t for t in labels) and any("History" in t for t in labels)
    replies = [r["text"] for r in app.replies_to(card["message_id"])]
    assert any("Approved by @alice" in t for t in replies)
    assert any("Done" in t and "dry-run" in t for t in replies)
    assert any("kubectl rollout restart deployment/cart --namespace shop" in t for t in replies)
    assert any(t.startswith("✅ Done") and "changed)\nkubectl rollout" in t for t in replies)
    decision = await app.decision(inc)
    assert decision.state is DecisionState.SUCCEEDED
    assert decision.result["dry_run"] is True
    assert decision.result["argv"] == [
        "kubectl", "rollout", "restart", "deployment/cart", "--namespace", "shop"
    ]
    actions = [(r["action"], r["result"], r["user_id"]) for r in await app.audit(inc)]
    assert ("approve", "approved", ALICE["id"]) in actions
    assert ("execute", "succeeded", None) in actions
    callbacks_clean(app)


async def test_reject_with_reason_reply(start_app: AppFactory, state_url: str) -> None:
    app = await start_app(redis_url=state_url)
    inc, card = await pending_card(app)
    qid = await app.press(card["message_id"], "Reject", BOB)
    await app.settled()
    assert answer_of(app, qid)["text"].startswith("Rejected")
    msg = app.em.message(CHAT, card["message_id"])
    assert "Rejected by @bob" in msg["text"]
    prompt = next(r for r in app.replies_to(card["message_id"]) if "add a reason" in r["text"])
    # Someone else's reply is not a reason.
    app.em.user_sends(CHAT, ALICE, "not my call", reply_to_message_id=prompt["message_id"])
    app.em.user_sends(CHAT, BOB, "deploy is being rolled back by hand",
                      reply_to_message_id=prompt["message_id"])
    await wait_for(lambda: "deploy is being rolled back by hand"
                   in app.em.message(CHAT, card["message_id"])["text"], 15)
    await app.settled()
    assert "not my call" not in app.em.message(CHAT, card["message_id"])["text"]
    decision = await app.decision(inc)
    assert decision.state is DecisionState.REJECTED
    assert decision.reason == "deploy is being rolled back by hand"
    assert ("reject_reason", "recorded") in [(r["action"], r["result"]) for r in await app.audit()]
    callbacks_clean(app)


async def test_reject_without_reason(app: Harness) -> None:
    inc, card = await pending_card(app)
    await app.press(card["message_id"], "Reject", ALICE)
    await app.settled()
    decision = await app.decision(inc)
    assert decision.state is DecisionState.REJECTED and decision.reason is None
    assert "Rejected by @alice" in app.em.message(CHAT, card["message_id"])["text"]
    callbacks_clean(app)


@pytest.mark.parametrize("word", ["Approve", "Reject", "Re-analyze", "Silence"])
async def test_non_approver_is_refused_and_audited(app: Harness, word: str) -> None:
    inc, card = await pending_card(app)
    before = app.em.message(CHAT, card["message_id"])
    qid = await app.press(card["message_id"], word, MALLORY)
    await app.settled()
    answer = answer_of(app, qid)
    assert answer.get("show_alert") is True
    assert "not allowed" in answer["text"] and str(MALLORY["id"]) in answer["text"]
    after = app.em.message(CHAT, card["message_id"])
    assert after["text"] == before["text"] and after["edit_count"] == before["edit_count"]
    assert (await app.decision(inc)).state is DecisionState.PENDING
    rows = [r for r in await app.audit(inc) if r["user_id"] == MALLORY["id"]]
    assert [r["result"] for r in rows] == ["not_allowed"]
    callbacks_clean(app)


async def test_anyone_may_press_details_and_history(app: Harness) -> None:
    _, card = await pending_card(app, "group-of-25-firing.json", state="")
    await app.press(card["message_id"], "Details", MALLORY)
    await app.press(card["message_id"], "History", MALLORY)
    await app.settled()
    replies = app.replies_to(card["message_id"])
    details = [r for r in replies if "StormPodNotReady" in r["text"] or "storm" in r["text"]]
    assert 1 <= len(details) <= 4
    assert len(replies) <= 4  # at most three Details messages + one History
    assert any("History" in r["text"] for r in replies)
    assert any("Why: No rule recognises" in r["text"] for r in replies)  # the reasoning
    callbacks_clean(app)


async def test_two_person_approval_for_critical_risk(start_app: AppFactory, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(CRITICAL_RULES)
    app = await start_app(rules_path=str(rules))
    inc, card = await pending_card(app)
    assert "risk critical" in card["text"]
    first = await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    assert answer_of(app, first)["text"] == "Approval recorded (1/2)"
    assert "1/2" in app.em.message(CHAT, card["message_id"])["text"]
    assert "@alice" in app.em.message(CHAT, card["message_id"])["text"]
    again = await app.press(card["message_id"], "Approve", ALICE)
    await app.settled()
    assert "already approved" in answer_of(app, again)["text"]
    assert (await app.decision(inc)).state is DecisionState.PENDING
    second = await app.press(card["message_id"], "Approve", BOB)
    await app.settled()
    assert answer_of(app, second)["text"] == "Approved — executing"
    decision = await app.decision(inc)
    assert decision.state is DecisionState.SUCCEEDED
    assert decision.decided_by == "@alice, @bob"
    callbacks_clean(app)


async def test_expiry_removes_buttons_and_replies(start_app: AppFactory) -> None:
    app = await start_app(approval_timeout="1s")
    body = await app.alert("crashloop-firing.json")
    inc = body["opened"][0]
    card = await app.wait_card(lambda m: "Expired" in m["text"], timeout=20)
    await app.settled()
    assert (await app.decision(inc)).state is DecisionState.EXPIRED
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert not any("Approve" in t for t in labels)
    assert any("Expired" in r["text"] for r in app.replies_to(card["message_id"]))


async def test_resolve_cancels_pending_proposal(app: Harness) -> None:
    inc, card = await pending_card(app, "single-firing.json")
    await app.alert("single-resolved.json")
    await app.settled()
    assert (await app.decision(inc)).state is DecisionState.CANCELLED
    text = app.em.message(CHAT, card["message_id"])["text"]
    assert "Cancelled" in text and "RESOLVED" in text.upper()
    assert any("Cancelled" in r["text"] for r in app.replies_to(card["message_id"]))


async def test_buttons_of_a_card_from_before_a_database_reset(start_app: AppFactory) -> None:
    old = await start_app(db_name="old.db")
    _, card = await pending_card(old)
    await old.app.stop()
    fresh = await start_app(db_name="fresh.db")
    qid = fresh.press_nowait(card["message_id"], "Approve", ALICE)
    await wait_for(lambda: fresh.em.callback_answer(qid), 15)
    assert "Unknown incident" in answer_of(fresh, qid)["text"]
    await fresh.settled()
    callbacks_clean(fresh)


async def test_superseded_card_and_foreign_callback_data(app: Harness) -> None:
    inc, card = await pending_card(app)
    old_approve = app.button(card, "Approve")
    await app.press(card["message_id"], "Re-analyze", ALICE)
    await app.settled()
    newer = await app.decision(inc)
    assert newer.state is DecisionState.PENDING and f":{newer.id}" not in old_approve
    # A press made on the card as it was before the edit reached the person's screen.
    qid = app.em.press_button(CHAT, card["message_id"], old_approve, ALICE, force=True)
    qid2 = app.em.press_button(CHAT, card["message_id"], "zz9:unknown", ALICE, force=True)
    await wait_for(lambda: app.em.callback_answer(qid) and app.em.callback_answer(qid2), 15)
    assert "out of date" in answer_of(app, qid)["text"]
    assert "out of date" in answer_of(app, qid2)["text"]
    assert (await app.decision(inc)).state is DecisionState.PENDING
    await app.settled()
    await app.wait_audit(("approve", "stale_card"), ("unknown_button", "ignored"))
    callbacks_clean(app)


async def test_restart_between_card_and_press(start_app: AppFactory) -> None:
    first = await start_app()
    inc, card = await pending_card(first)
    await first.app.stop()
    second = await start_app()
    await second.press(card["message_id"], "Approve", ALICE)
    await second.settled()
    assert (await second.decision(inc)).state is DecisionState.SUCCEEDED
    callbacks_clean(second)


async def test_stale_press_is_not_executed(start_app: AppFactory, tmp_path: Path) -> None:
    first = await start_app(callback_max_age="60s")
    inc, card = await pending_card(first)
    await first.app.stop()
    # The bot was away for ten minutes; the press queued in the meantime.
    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    change(first.db_target, "UPDATE meta SET value = ? WHERE key = 'heartbeat'", (long_ago,))
    first.press_nowait(card["message_id"], "Approve", ALICE, age=600)
    second = await start_app(callback_max_age="60s")
    note = await wait_for(lambda: [r for r in second.replies_to(card["message_id"])
                                   if "too late" in r["text"]], 15)
    assert "@alice" in note[0]["text"]
    await second.settled()
    assert (await second.decision(inc)).state is DecisionState.PENDING
    assert [r["result"] for r in await second.audit(inc) if r["action"] == "approve"] == [
        "stale_press"
    ]
    assert not [r for r in await second.audit(inc) if r["action"] == "execute"]


async def test_silence_from_the_card(start_app: AppFactory) -> None:
    app = await start_app()
    _, card = await pending_card(app, "single-firing.json")
    qid = await app.press(card["message_id"], "Silence", ALICE)
    await app.settled()
    assert "Silenced" in answer_of(app, qid)["text"]
    text = app.em.message(CHAT, card["message_id"])["text"]
    assert "silenced until" in text.lower() and "@alice" in text
    await app.alert("single-resolved.json")
    await app.settled()
    await app.app.stop()
    # The silence is in SQLite: after a restart a re-fire of the group posts nothing.
    again = await start_app()
    refire = again.em.messages(CHAT)
    from harness import fixture

    payload = fixture("single-firing.json")
    payload["alerts"][0]["startsAt"] = "2026-11-27T15:00:00Z"
    status, body = await again.post("/alerts/alertmanager", payload)
    assert status == 200 and body["silenced"] == body["opened"]
    await again.settled()
    assert again.em.messages(CHAT) == refire


async def test_whoami_answers_in_any_chat(app: Harness) -> None:
    app.em.add_chat(-100999, title="Elsewhere")
    app.em.user_sends(CHAT, ALICE, "/whoami")
    app.em.user_sends(CHAT, MALLORY, f"/whoami@{app.em.bot_user['username']}")
    app.em.user_sends(-100999, MALLORY, "/whoami")
    await wait_for(lambda: len([m for m in app.em.messages(CHAT) if "111" in m["text"]
                                or "666" in m["text"]]) >= 2
                   and app.em.messages(-100999)[1:], 15)
    await app.settled()
    texts = [m["text"] for m in app.em.messages(CHAT) if m["from"]["is_bot"]]
    alice = next(t for t in texts if "111" in t)
    mallory = next(t for t in texts if "666" in t)
    assert "Approver: yes" in alice and "Approver: no" not in alice
    assert "Approver: no" in mallory and "Approver: yes" not in mallory
    assert "666" in app.em.messages(-100999)[-1]["text"]


async def test_twenty_presses_two_instances_one_transition(
    start_app: AppFactory, tmp_path: Path
) -> None:
    await _race(start_app, tmp_path, rules=None)


async def test_twenty_presses_two_instances_two_approvers(
    start_app: AppFactory, tmp_path: Path
) -> None:
    await _race(start_app, tmp_path, rules=CRITICAL_RULES)


async def _race(start_app: AppFactory, tmp_path: Path, rules: str | None) -> None:
    extra: dict[str, Any] = {}
    if rules:
        path = tmp_path / "rules.toml"
        path.write_text(rules)
        extra["rules_path"] = str(path)
    a = await start_app(**extra)
    inc, card = await pending_card(a)
    await a.app.stop()
    # Two instances, each with its own connections and lock, on one database file. The
    # second stands by (the first holds the leader lease): it never handles Telegram's
    # updates, but its writes race the leader's all the same, so half of the presses go
    # through its approval service while the leader's handlers take the other half.
    a = await start_app(poll=False, **extra)
    b = await start_app(poll=False, **extra)
    assert b.app.leadership is not None and b.app.leadership.token is None
    decision_id = (await a.decision(inc)).id
    data = a.button(card, "Approve")
    for i in range(10):
        a.em.press_button(CHAT, card["message_id"], data, ALICE if i % 2 else BOB)
    updates = a.em.pending_updates()[-10:]
    assert len(updates) == 10

    async def feed(update: dict) -> None:
        assert a.app.dp is not None and a.app.bot is not None
        await a.app.dp.feed_update(a.app.bot, Update.model_validate(update))

    async def approve(i: int) -> None:
        who = ALICE if i % 2 else BOB
        await b.approvals.approve(Actor(user_id=who["id"], name=who["username"], chat_id=CHAT),
                                  inc, decision_id)

    await asyncio.gather(*(feed(u) for u in updates), *(approve(i) for i in range(10)))
    await a.settled()
    await b.settled()
    rows = await a.audit(inc)
    presses = [r for r in rows if r["action"] == "approve"]
    assert len(presses) == 20
    assert len([r for r in presses if r["result"] == "approved"]) == 1
    assert len([r for r in rows if r["action"] == "execute" and r["result"] == "started"]) == 1
    decision = await a.decision(inc)
    assert decision.state is DecisionState.SUCCEEDED
    async with a.db.read() as conn:
        approvals = await repo.approvals_of(conn, decision.id)
    assert len(approvals) == (2 if rules else 1)
    callbacks_clean(a)


async def test_chat_admins_may_approve_when_enabled(start_app: AppFactory, state_url: str) -> None:
    app = await start_app(approver_ids=[], approvers_from_chat_admins=True, redis_url=state_url)
    inc, card = await pending_card(app)
    refused = await app.press(card["message_id"], "Approve", MALLORY)
    assert answer_of(app, refused).get("show_alert") is True
    await app.press(card["message_id"], "Approve", ALICE)  # an admin of the chat
    await app.settled()
    assert (await app.decision(inc)).state is DecisionState.SUCCEEDED
    # The admin list was looked up once and then served from the cache.
    assert len(app.em.calls("getChatAdministrators")) == 1
    callbacks_clean(app)


async def _stop_with_state(start_app: AppFactory, tmp_path: Path, state: str):
    first = await start_app()
    inc, card = await pending_card(first)
    await first.app.stop()
    change(first.db_target, "UPDATE decisions SET state = ? WHERE incident_id = ?", (state, inc))
    return inc, card


async def test_execution_cut_short_by_a_crash_is_failed_not_rerun(
    start_app: AppFactory, tmp_path: Path
) -> None:
    inc, card = await _stop_with_state(start_app, tmp_path, "executing")
    second = await start_app()
    note = await wait_for(lambda: [r for r in second.replies_to(card["message_id"])
                                   if "Outcome unknown" in r["text"]], 15)
    await second.settled()
    assert len(note) == 1
    decision = await second.decision(inc)
    assert decision.state is DecisionState.FAILED and decision.result["unknown"] is True
    assert not [r for r in await second.audit(inc)
                if r["action"] == "execute" and r["result"] == "started"]
    assert "check" in second.em.message(CHAT, card["message_id"])["text"].lower()


async def test_approved_but_not_started_runs_once_after_restart(
    start_app: AppFactory, tmp_path: Path
) -> None:
    inc, _ = await _stop_with_state(start_app, tmp_path, "approved")
    second = await start_app()
    await second.settled()
    assert (await second.decision(inc)).state is DecisionState.SUCCEEDED
    started = [r for r in await second.audit(inc)
               if r["action"] == "execute" and r["result"] == "started"]
    assert len(started) == 1
