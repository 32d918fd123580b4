"""What each press on a card does to the decision, its audit rows and the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from factories import T0, make_incident

from bot.incidents.approvals import ApprovalConfig, ApprovalService
from bot.models import (
    Action,
    Actor,
    DecisionState,
    IncidentStatus,
    Proposal,
    Risk,
    Verb,
)
from bot.silences.service import SilenceService
from storage import repo, transitions
from storage.db import Database, Wake
from storage.state import build_state

CHAT = -1001234567890
ALICE = Actor(user_id=111, name="@alice", chat_id=CHAT)
BOB = Actor(user_id=222, name="@bob", chat_id=CHAT)
INC = "INC-7K3F9Q"


@pytest.fixture
async def service(db: Database) -> AsyncIterator[ApprovalService]:
    state = build_state("")
    clock = lambda: T0  # noqa: E731
    yield ApprovalService(
        db, state, ApprovalConfig("en", "UTC", timedelta(minutes=5)), clock,
        SilenceService(db, clock, "en", "UTC"),
    )
    await state.close()


async def pending(db: Database, required: int = 1, *, resolved: bool = False) -> int:
    proposal = Proposal(
        action=Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop"),
        risk=Risk.CRITICAL if required > 1 else Risk.MEDIUM, summary="restart", reasoning="r",
    )
    async with db.write() as conn:
        await repo.insert_incident(conn, make_incident(
            status=IncidentStatus.RESOLVED if resolved else IncidentStatus.FIRING))
        decision_id = await repo.insert_decision(conn, INC, T0)
        await transitions.compare_and_set(conn, decision_id, [DecisionState.ANALYZING],
                                          DecisionState.PENDING, T0, proposal=proposal,
                                          required_approvals=required)
    return decision_id


async def state_of(db: Database, decision_id: int) -> DecisionState:
    async with db.read() as conn:
        decision = await repo.get_decision(conn, decision_id)
    assert decision is not None
    return decision.state


async def audit(db: Database) -> list[tuple[str, str, int | None]]:
    async with db.read() as conn:
        return [(r["action"], r["result"], r["user_id"]) for r in await repo.audit_rows(conn)]


async def test_approve_approves_and_the_commit_schedules_execution(
    db: Database, service: ApprovalService
) -> None:
    decision_id = await pending(db)
    execution = db.wake_event(Wake.EXECUTION)
    outcome = await service.approve(ALICE, INC, decision_id)
    assert outcome.toast == "approved_executing"
    assert await state_of(db, decision_id) is DecisionState.APPROVED
    assert execution.is_set()
    assert await audit(db) == [("approve", "approved", ALICE.user_id)]


async def test_two_approvers_at_critical_risk(db: Database, service: ApprovalService) -> None:
    decision_id = await pending(db, required=2)
    first = await service.approve(ALICE, INC, decision_id)
    assert (first.toast, first.ctx) == ("approval_recorded", {"count": 1, "required": 2})
    again = await service.approve(ALICE, INC, decision_id)
    assert again.toast == "already_approved"
    assert await state_of(db, decision_id) is DecisionState.PENDING
    assert (await service.approve(BOB, INC, decision_id)).toast == "approved_executing"
    assert await state_of(db, decision_id) is DecisionState.APPROVED
    assert await audit(db) == [("approve", "recorded 1/2", ALICE.user_id),
                               ("approve", "already_approved", ALICE.user_id),
                               ("approve", "approved", BOB.user_id)]


async def test_press_on_an_old_card_or_unknown_incident_is_refused_and_audited(
    db: Database, service: ApprovalService
) -> None:
    decision_id = await pending(db)
    stale = await service.approve(ALICE, INC, decision_id + 1)
    unknown = await service.reject(ALICE, "INC-NOSUCH", decision_id)
    assert (stale.toast, stale.alert) == ("stale_card", True)
    assert (unknown.toast, unknown.alert) == ("unknown_incident", True)
    assert await state_of(db, decision_id) is DecisionState.PENDING
    assert await audit(db) == [("approve", "stale_card", ALICE.user_id),
                               ("reject", "unknown_incident", ALICE.user_id)]


async def test_reject_then_approve_is_already_decided(db: Database,
                                                      service: ApprovalService) -> None:
    decision_id = await pending(db)
    assert (await service.reject(BOB, INC, decision_id)).toast == "rejected"
    late = await service.approve(ALICE, INC, decision_id)
    assert (late.toast, late.ctx) == ("already_decided", {"state": "rejected"})
    assert await state_of(db, decision_id) is DecisionState.REJECTED


async def test_rejection_reason_from_a_reply(db: Database, service: ApprovalService) -> None:
    decision_id = await pending(db)
    async with db.write() as conn:
        await repo.save_card(conn, INC, CHAT, message_id=42, thread_id=None, rendered_hash=None)
    await service.reject(BOB, INC, decision_id)
    assert not await service.add_reason(ALICE, CHAT, 42, "not alice's rejection")
    assert await service.add_reason(BOB, CHAT, 42, "  deploy freeze  ")
    async with db.read() as conn:
        decision = await repo.get_decision(conn, decision_id)
    assert decision is not None and decision.reason == "deploy freeze"


async def test_reanalyze_supersedes_and_schedules_analysis(
    db: Database, service: ApprovalService
) -> None:
    decision_id = await pending(db)
    analysis = db.wake_event(Wake.ANALYSIS)
    assert (await service.reanalyze(ALICE, INC, decision_id)).toast == "reanalyzing"
    assert await state_of(db, decision_id) is DecisionState.SUPERSEDED
    assert analysis.is_set()
    async with db.read() as conn:
        current = await repo.current_decision(conn, INC)
    assert current is not None and current.state is DecisionState.ANALYZING


@pytest.mark.parametrize("press", ["approve", "reject", "reanalyze"])
async def test_a_resolved_incident_takes_no_press(
    db: Database, service: ApprovalService, press: str
) -> None:
    """An old card's press on a resolved incident: refused with a toast that says why."""
    decision_id = await pending(db, resolved=True)
    outcome = await getattr(service, press)(ALICE, INC, decision_id)
    assert (outcome.toast, outcome.alert) == ("incident_resolved", True)
    assert await state_of(db, decision_id) is DecisionState.PENDING
    assert await audit(db) == [(press, "incident_resolved", ALICE.user_id)]


async def test_stale_press_is_audited(db: Database, service: ApprovalService) -> None:
    decision_id = await pending(db)
    await service.stale_press(ALICE, "approve", INC, decision_id)
    assert await state_of(db, decision_id) is DecisionState.PENDING
    assert await audit(db) == [("approve", "stale_press", ALICE.user_id)]
