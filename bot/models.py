"""Domain types shared by every part of opsgate. No Telegram types here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Annotations a Grafana alert's extras are kept in (see bot.alerts.payloads): the
# links become card buttons (button key -> annotation), the values a card line.
GRAFANA_LINK_ANNOTATIONS = {
    "dashboard": "grafana_dashboard_url",
    "panel": "grafana_panel_url",
    "grafana_silence": "grafana_silence_url",
}
VALUES_ANNOTATION = "grafana_values"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RISK_ORDER.index(self)

    def at_least(self, other: Risk) -> Risk:
        """The higher of the two: a proposer may raise risk, never lower it."""
        return self if self.rank >= other.rank else other

    def raised(self) -> Risk:
        """One level higher (critical stays critical)."""
        return _RISK_ORDER[min(self.rank + 1, len(_RISK_ORDER) - 1)]


_RISK_ORDER = [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL]

# Severity labels in order; a label not listed counts as warning.
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "high": 2, "page": 2, "critical": 3}
UNKNOWN_RANK = SEVERITY_RANK["warning"]


def severity_rank(value: str) -> int:
    return SEVERITY_RANK.get(value.strip().lower(), UNKNOWN_RANK)


class DecisionState(StrEnum):
    ANALYZING = "analyzing"
    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    INVALID = "invalid"
    SUPERSEDED = "superseded"


# States from which a re-analysis may start a new decision.
REANALYZABLE = frozenset(
    {
        DecisionState.PENDING,
        DecisionState.REJECTED,
        DecisionState.EXPIRED,
        DecisionState.CANCELLED,
        DecisionState.INVALID,
        DecisionState.FAILED,
    }
)


class ActionKind(StrEnum):
    KUBECTL = "kubectl"
    HTTP = "http"


class Verb(StrEnum):
    ROLLOUT_RESTART = "rollout-restart"
    ROLLOUT_UNDO = "rollout-undo"
    SCALE = "scale"
    DELETE_POD = "delete-pod"


class Action(BaseModel):
    """A remediation as data. The executor turns it into an argv or a request."""

    model_config = ConfigDict(frozen=True)

    kind: ActionKind = ActionKind.KUBECTL
    verb: Verb
    target_kind: str = "deployment"
    target_name: str
    namespace: str
    params: dict[str, int | str] = Field(default_factory=dict)


class ProposalSource(StrEnum):
    RULE = "rule"
    PLAYBOOK = "playbook"
    LLM = "llm"


class RelatedItem(BaseModel):
    """A past incident or runbook section the knowledge index found similar."""

    kind: Literal["incident", "runbook"]
    ref: str  # incident id, or "file.md#section"
    title: str
    similarity: float  # 0..1: cosine with embeddings, else a squashed BM25 score
    outcome: str = ""  # past incidents: the last decision's state ("succeeded", "rejected")
    detail: str = ""  # the proposed action, a rejection reason, or the section's first line


class ToolRecord(BaseModel):
    """One investigation tool call of the model, as stored with the decision."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    excerpt: str = ""  # redacted, bounded result (or the refusal)
    refused: bool = False
    ok: bool = True


class Evidence(BaseModel):
    """What the proposers saw besides the alerts; shown in Details."""

    related: list[RelatedItem] = Field(default_factory=list)
    related_note: str = ""  # "" | "timeout" | "error": why Related is missing
    tools: list[ToolRecord] = Field(default_factory=list)


class Dissent(BaseModel):
    """One engine's answer in a consensus round (absent when it timed out or failed)."""

    engine: str
    source: ProposalSource
    action_line: str = ""  # "rollout-restart deployment/cart" or "" for no action
    absent: bool = False
    absent_reason: str = ""  # "timeout" | "error" | "unusable" | "invalid" (rules)
    risk: Risk | None = None
    summary: str = ""
    reasoning: str = ""
    agrees: bool = False  # with the chosen proposal


class Consensus(BaseModel):
    agree: int  # engines proposing the chosen answer
    asked: int  # engines asked, absent ones included
    answers: list[Dissent] = Field(default_factory=list)
    raised_from: Risk | None = None  # the risk before disagreement raised it

    @property
    def disagreement(self) -> bool:
        return any(not a.agrees and not a.absent for a in self.answers)

    @property
    def dissents(self) -> list[Dissent]:
        return [a for a in self.answers if not a.agrees]


class Unanswered(BaseModel):
    """An LLM that was asked but gave nothing usable, so another answer stands."""

    engine: str
    reason: str  # "timeout" | "error" | "unusable"


class Proposal(BaseModel):
    """What a proposer suggests. `action` is None when nothing safe can be automated."""

    action: Action | None
    risk: Risk
    summary: str
    reasoning: str
    confidence: float | None = None  # None: a rule answer, shown as "rule"
    source: ProposalSource = ProposalSource.RULE
    source_name: str = ""
    evidence: Evidence | None = None
    consensus: Consensus | None = None
    unanswered: list[Unanswered] = Field(default_factory=list)  # shown on the card
    # The action is in a CRITICAL_NAMESPACES namespace: why its risk is critical.
    critical_namespace: bool = False


class Alert(BaseModel):
    """One firing episode of one label set (fingerprint + starts_at)."""

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    source: str = "alertmanager"
    # False when the sender gave no start time (generic webhook): starts_at is the time
    # received, and ingest joins the alert to its episode still firing. Not stored.
    start_known: bool = True


class AlertGroup(BaseModel):
    """One notification: the alerts of one group as the sender saw them."""

    source: str
    group_key: str
    group_labels: dict[str, str]
    common_labels: dict[str, str] = Field(default_factory=dict)
    common_annotations: dict[str, str] = Field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0
    alerts: list[Alert]


class Incident(BaseModel):
    id: str
    group_key: str
    group_labels: dict[str, str]
    title: str
    alertname: str
    severity: str
    target: str
    namespace: str
    status: IncidentStatus
    firing_count: int
    resolved_count: int
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    chat_id: int
    acked_by_id: int | None = None  # who acknowledged ("I'm on it"), until unacked
    acked_by: str | None = None
    acked_at: datetime | None = None


class Decision(BaseModel):
    id: int
    incident_id: str
    state: DecisionState
    proposal: Proposal | None
    required_approvals: int
    created_at: datetime
    updated_at: datetime
    invalid_reason: str | None = None
    decided_by: str | None = None
    decided_by_id: int | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    auto_approved: bool = False


class Approval(BaseModel):
    decision_id: int
    user_id: int
    user_name: str
    at: datetime


class Silence(BaseModel):
    id: str
    matchers: list[Matcher]
    reason: str
    created_by: str
    created_by_id: int
    starts_at: datetime
    ends_at: datetime
    expired_at: datetime | None = None
    # The chat it was made in: it silences incidents in that chat only. None for one made
    # before silences had a chat, which silences every chat.
    chat_id: int | None = None


class Matcher(BaseModel):
    name: str
    value: str
    is_regex: bool = False


class Actor(BaseModel):
    """Who did something from the chat."""

    user_id: int
    name: str
    chat_id: int | None = None


Silence.model_rebuild()


Person = int | str  # a Telegram user id, or a username without its "@"


@dataclass(frozen=True)
class Pace:
    """When an incident nobody reacts to is brought up again: first after `after`, then
    every `every`, `max` reminders in all (0: never)."""

    after: timedelta = timedelta(minutes=10)
    every: timedelta = timedelta(minutes=10)
    max: int = 3


@dataclass(frozen=True)
class OnCall:
    """What a route says about reminders: whom they mention, whom the escalation
    mentions (nobody: no escalation), and their pace."""

    reminded: tuple[Person, ...]
    escalate_to: tuple[Person, ...] = ()
    pace: Pace = field(default_factory=Pace)
