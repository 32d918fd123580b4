"""Every (state, event) pair of the approval state machine, on a real SQLite database.

The expected outcomes are DESIGN's diagram written out here by hand, not read
back from bot.incidents.states.TABLE: a wrong arrow in the table fails a test.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from factories import T0, make_incident

from bot.cards.notes import Voice
from bot.incidents.states import Event, transition
from bot.models import Actor, DecisionState, IncidentStatus
from storage import outbox, repo
from storage.db import Database

S = DecisionState
E = Event
NOW = T0 + timedelta(minutes=5)
CHATS = (-1001234567890, -1002)  # the incident lives in two chats
VOICE = Voice("en", "UTC")
ALICE = Actor(user_id=111, name="@alice", chat_id=CHATS[0])

# DESIGN's diagram: the pairs with an arrow, and where it leads.
ARROWS: dict[tuple[DecisionState, Event], DecisionState] = {
    (S.ANALYZING, E.ANALYZED): S.PENDING,
    (S.ANALYZING, E.AUTO_APPROVED): S.APPROVED,
    (S.ANALYZING, E.FOUND_INVALID): S.INVALID,
    (S.ANALYZING, E.CANCEL): S.CANCELLED,  # resolved while analysing: never pending later
    (S.PENDING, E.APPROVE): S.APPROVED,
    (S.PENDING, E.REJECT): S.REJECTED,
    (S.PENDING, E.EXPIRE): S.EXPIRED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.APPROVED, E.START): S.EXECUTING,
    (S.EXECUTING, E.SUCCEED): S.SUCCEEDED,
    (S.EXECUTING, E.FAIL): S.FAILED,
    (S.EXECUTING, E.OUTCOME_UNKNOWN): S.FAILED,
    **{(s, E.REANALYZE): S.SUPERSEDED
       for s in (S.PENDING, S.REJECTED, S.EXPIRED, S.CANCELLED, S.INVALID, S.FAILED)},
}
# The audit row and the thread note each event leaves.
AUDIT = {
    E.ANALYZED: ("analyze", "done"), E.AUTO_APPROVED: ("analyze", "done"),
    E.FOUND_INVALID: ("analyze", "done"), E.APPROVE: ("approve", "approved"),
    E.REJECT: ("reject", "rejected"), E.EXPIRE: ("expire", "expired"),
    E.CANCEL: ("cancel", "cancelled"), E.START: ("execute", "started"),
    E.SUCCEED: ("execute", "succeeded"), E.FAIL: ("execute", "failed"),
    E.OUTCOME_UNKNOWN: ("execute", "unknown_outcome"), E.REANALYZE: ("reanalyze", "superseded"),
}
NOTE = {
    E.AUTO_APPROVED: "approved", E.APPROVE: "approved", E.REJECT: "rejected",
    E.EXPIRE: "expired", E.CANCEL: "cancelled", E.SUCCEED: "outcome", E.FAIL: "outcome",
    E.OUTCOME_UNKNOWN: "outcome", E.REANALYZE: "reanalyzing",
}
OUTCOME = {"succeeded": True, "unknown": False, "dry_run": True, "effect": None,
           "output": "", "error": ""}
NOTE_CTX: dict[Event, dict[str, Any]] = {
    E.AUTO_APPROVED: {"names": [], "at": NOW, "auto_reason": "proven"},
    E.APPROVE: {"names": ["@alice"], "at": NOW}, E.REJECT: {"name": "@alice", "minutes": 5},
    E.EXPIRE: {"at": NOW}, E.SUCCEED: OUTCOME, E.FAIL: OUTCOME, E.OUTCOME_UNKNOWN: OUTCOME,
    E.REANALYZE: {"name": "@alice"},
}
# A resolved incident's decisions take no transition to pending or approved.
OPEN_ONLY = {E.ANALYZED, E.AUTO_APPROVED, E.APPROVE, E.REANALYZE}


async def _decision_in(db: Database, state: DecisionState, *, resolved: bool = False) -> int:
    inc = make_incident(status=IncidentStatus.RESOLVED if resolved else IncidentStatus.FIRING)
    async with db.write() as conn:
        await repo.insert_incident(conn, inc)
        for chat in CHATS:
            await repo.plan_card(conn, inc.id, chat, None)
        decision_id = await repo.insert_decision(conn, inc.id, T0)
        await conn.execute("UPDATE decisions SET state = ? WHERE id = ?",
                           (state.value, decision_id))
    return decision_id


async def _snapshot(db: Database) -> tuple[list[tuple[int, str]], list[dict[str, Any]],
                                           list[tuple[str, int, str | None]]]:
    async with db.read() as conn:
        async with conn.execute("SELECT id, state FROM decisions ORDER BY id") as cur:
            decisions = [(r[0], r[1]) for r in await cur.fetchall()]
        audit = await repo.audit_rows(conn)
        async with conn.execute("SELECT kind, chat_id, payload FROM outbox ORDER BY id") as cur:
            rows = [(r[0], r[1], r[2]) for r in await cur.fetchall()]
    return decisions, audit, rows


PAIRS = [(state, event) for state in DecisionState for event in Event]


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
async def test_every_state_event_pair(db: Database, state: DecisionState, event: Event) -> None:
    decision_id = await _decision_in(db, state)
    before = await _snapshot(db)
    async with db.write() as conn:
        moved = await transition(conn, decision_id, event, NOW, VOICE, actor=ALICE,
                                 note=NOTE_CTX.get(event))
    decisions, audit, rows = await _snapshot(db)
    target = ARROWS.get((state, event))
    if target is None:
        assert moved is None
        assert (decisions, audit, rows) == before, "a forbidden pair changed something"
        return
    assert moved is not None and moved.state is target
    assert dict(decisions)[decision_id] == target.value
    (row,) = audit
    assert (row["action"], row["result"]) == AUDIT[event]
    assert row["decision_id"] == decision_id and row["user_id"] == ALICE.user_id
    cards = [chat for kind, chat, _ in rows if kind == outbox.CARD]
    notes = [(chat, payload) for kind, chat, payload in rows if kind == outbox.REPLY]
    assert sorted(cards) == sorted(CHATS), "the card is synced in every chat"
    if event in NOTE:
        assert sorted(chat for chat, _ in notes) == sorted(CHATS)
        assert all(f'"note": "{NOTE[event]}"' in payload for _, payload in notes)
    else:
        assert notes == []
    if event is E.REANALYZE:
        (successor,) = [d for d in decisions if d[0] != decision_id]
        assert successor[1] == S.ANALYZING.value
        assert row["detail"] == f"new decision {successor[0]}"
    else:
        assert len(decisions) == 1


@pytest.mark.parametrize("event", sorted(OPEN_ONLY))
async def test_resolved_incident_takes_no_transition_to_pending_or_approved(
    db: Database, event: Event
) -> None:
    state = next(s for (s, e) in ARROWS if e is event)
    decision_id = await _decision_in(db, state, resolved=True)
    before = await _snapshot(db)
    async with db.write() as conn:
        assert await transition(conn, decision_id, event, NOW, VOICE, actor=ALICE,
                                note=NOTE_CTX.get(event)) is None
    assert await _snapshot(db) == before


async def test_of_two_callers_exactly_one_moves_the_decision(db: Database) -> None:
    decision_id = await _decision_in(db, S.PENDING)
    async with db.write() as conn:
        first = await transition(conn, decision_id, E.REJECT, NOW, VOICE, actor=ALICE,
                                 note=NOTE_CTX[E.REJECT])
    async with db.write() as conn:
        second = await transition(conn, decision_id, E.APPROVE, NOW, VOICE, actor=ALICE,
                                  note=NOTE_CTX[E.APPROVE])
    assert first is not None and second is None
    _, audit, _ = await _snapshot(db)
    assert [(r["action"], r["result"]) for r in audit] == [("reject", "rejected")]
