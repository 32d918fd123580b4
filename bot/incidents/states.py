"""The approval state machine: DESIGN's diagram as a table, and the one function
that moves a decision along it.

    analyzing ─▶ pending ─approve×N─▶ approved ─▶ executing ─▶ succeeded | failed
       │           ├─reject──────────▶ rejected
       │           ├─expire──────────▶ expired
       │           └─incident resolved▶ cancelled
       ├─engine error/timeout ─▶ pending (rules fallback always yields a proposal)
       └─proposal fails validation ─▶ invalid
    re-analyze (pending, rejected, expired, cancelled, invalid, failed) ─▶ new decision;
    the old one becomes superseded. Never from approved or executing.

A transition is one compare-and-set, its audit row, the card sync and the thread
note, all in the caller's write transaction: of two presses at once exactly one
moves the decision, and the other changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot import audit
from bot.cards import notes
from bot.cards.notes import Voice
from bot.models import REANALYZABLE, Actor, Decision, DecisionState
from storage import repo, transitions
from storage.repo import Conn

S = DecisionState


class Event(StrEnum):
    ANALYZED = "analyzed"  # the engine proposed an action (rules fallback included)
    AUTO_APPROVED = "auto_approved"  # ... and a trusted playbook needs no person
    FOUND_INVALID = "found_invalid"  # no valid proposal: nothing to approve
    APPROVE = "approve"  # the last approval that was needed
    REJECT = "reject"
    EXPIRE = "expire"  # nobody decided within APPROVAL_TIMEOUT
    CANCEL = "cancel"  # the incident resolved before anyone decided
    START = "start"  # the executor takes it
    SUCCEED = "succeed"
    FAIL = "fail"
    OUTCOME_UNKNOWN = "outcome_unknown"  # found executing at start-up: never re-run
    REANALYZE = "reanalyze"  # a new decision replaces this one


@dataclass(frozen=True)
class Rule:
    sources: frozenset[DecisionState]
    target: DecisionState
    audit_action: str
    audit_result: str
    note: str | None = None  # the thread note (templates/<locale>/thread/<note>.html)
    open_incident: bool = False  # a resolved incident's decision never takes it
    successor: bool = False  # a new decision to analyse replaces this one


def _rule(sources: set[DecisionState] | frozenset[DecisionState], target: DecisionState,
          audit_action: str, audit_result: str, **kw: Any) -> Rule:
    return Rule(frozenset(sources), target, audit_action, audit_result, **kw)


TABLE: Mapping[Event, Rule] = {
    Event.ANALYZED: _rule({S.ANALYZING}, S.PENDING, "analyze", "done", open_incident=True),
    Event.AUTO_APPROVED: _rule({S.ANALYZING}, S.APPROVED, "analyze", "done", note="approved",
                               open_incident=True),
    Event.FOUND_INVALID: _rule({S.ANALYZING}, S.INVALID, "analyze", "done"),
    Event.APPROVE: _rule({S.PENDING}, S.APPROVED, "approve", "approved", note="approved",
                         open_incident=True),
    Event.REJECT: _rule({S.PENDING}, S.REJECTED, "reject", "rejected", note="rejected"),
    Event.EXPIRE: _rule({S.PENDING}, S.EXPIRED, "expire", "expired", note="expired"),
    # From analyzing too: a resolved incident's decision must not reach pending later.
    Event.CANCEL: _rule({S.ANALYZING, S.PENDING}, S.CANCELLED, "cancel", "cancelled",
                        note="cancelled"),
    Event.START: _rule({S.APPROVED}, S.EXECUTING, "execute", "started"),
    Event.SUCCEED: _rule({S.EXECUTING}, S.SUCCEEDED, "execute", "succeeded", note="outcome"),
    Event.FAIL: _rule({S.EXECUTING}, S.FAILED, "execute", "failed", note="outcome"),
    Event.OUTCOME_UNKNOWN: _rule({S.EXECUTING}, S.FAILED, "execute", "unknown_outcome",
                                 note="outcome"),
    Event.REANALYZE: _rule(REANALYZABLE, S.SUPERSEDED, "reanalyze", "superseded",
                           note="reanalyzing", open_incident=True, successor=True),
}


def allows(state: DecisionState, event: Event) -> bool:
    """Whether the diagram has an arrow for `event` out of `state`."""
    return state in TABLE[event].sources


async def transition(
    conn: Conn,
    decision_id: int,
    event: Event,
    now: datetime,
    voice: Voice,
    *,
    actor: Actor | None = None,
    fields: Mapping[str, Any] | None = None,
    detail: str | None = None,
    note: Mapping[str, Any] | None = None,
    thread_note: bool = True,
) -> Decision | None:
    """Perform `event` on the decision, in the caller's write transaction.

    `fields` are stored with the new state, `detail` goes into the audit row and
    `note` fills the thread note (`thread_note=False`: none, when it would tell the
    thread something untrue). Returns the decision as it now is, or None when
    the diagram has no such arrow from its current state (or another caller took
    it first): then nothing at all was written.
    """
    rule = TABLE[event]
    if not await transitions.compare_and_set(
        conn, decision_id, rule.sources, rule.target, now,
        open_incident=rule.open_incident, **dict(fields or {}),
    ):
        return None
    decision = await repo.get_decision(conn, decision_id)
    assert decision is not None
    incident = await repo.get_incident(conn, decision.incident_id)
    assert incident is not None
    if rule.successor:
        successor = await repo.insert_decision(conn, incident.id, now)
        detail = f"new decision {successor}"
    await audit.record(conn, now, rule.audit_action, rule.audit_result, actor=actor,
                       incident_id=incident.id, decision_id=decision_id, detail=detail)
    await notes.card_changed(conn, incident, now)
    if S.ANALYZING in rule.sources:
        await notes.proposal_ready(conn, incident)
    if rule.note is not None and thread_note:
        await notes.reply(conn, incident, rule.note, now, voice, **dict(note or {}))
    return decision
