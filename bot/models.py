"""Domain types shared by every part of opsgate. No Telegram types here."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


_RISK_ORDER = [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.CRITICAL]


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


class Proposal(BaseModel):
    """What a proposer suggests. `action` is None when nothing safe can be automated."""

    action: Action | None
    risk: Risk
    summary: str
    reasoning: str
    confidence: float | None = None  # None: a rule answer, shown as "rule"
    source: ProposalSource = ProposalSource.RULE
    source_name: str = ""


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
    silence_id: str | None = None
    chat_id: int


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
