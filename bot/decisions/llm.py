"""Optional LLM proposer over an OpenAI-compatible chat-completions API.

The model only suggests: its answer must be a JSON object matching
`LlmAnswer`, and its action must pass the same allowlist and name rules as
any other. Anything else (bad JSON, timeout, HTTP error, an action outside
the allowlist) makes `propose` return None with a log line, and the cascade
moves on. It never raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.execution.names import ActionLimits, InvalidAction
from bot.models import Action, Alert, Incident, Proposal, ProposalSource, Risk, Verb

log = logging.getLogger(__name__)

MAX_ALERTS = 20  # a group of 500 alerts adds cost, not information
MAX_VALUE_CHARS = 300  # per label/annotation value sent

SYSTEM_PROMPT = """You are the on-call assistant of a Kubernetes team. Given an incident, its \
alerts and the rule engine's suggestion, propose at most one remediation. Answer with one JSON \
object and nothing else:
{"action": {"verb": "rollout-restart" | "rollout-undo" | "scale" | "delete-pod",
            "target_kind": "deployment" | "statefulset" | "pod",
            "target_name": "<kubernetes name>", "namespace": "<namespace>",
            "params": {"replicas": <int>}} | null,
 "risk": "low" | "medium" | "high" | "critical",
 "summary": "<one line>", "reasoning": "<why, two or three sentences>",
 "confidence": <0..1>}
Use "action": null when no listed action is safe. scale takes an absolute "replicas"; \
other verbs take no params. delete-pod targets a pod; the others a deployment or statefulset. \
A human approves every action; say plainly when you are unsure."""


class LlmAction(BaseModel):
    verb: Verb
    target_kind: str
    target_name: str
    namespace: str
    params: dict[str, int] = Field(default_factory=dict)


class LlmAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: LlmAction | None
    risk: Risk
    reasoning: str = Field(min_length=1, max_length=2000)
    summary: str = Field(default="", max_length=200)
    confidence: float = Field(ge=0, le=1)


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "…"


def _alert_view(alert: Alert) -> dict[str, Any]:
    return {
        "status": alert.status.value,
        "labels": {k: _cut(v) for k, v in alert.labels.items()},
        "annotations": {k: _cut(v) for k, v in alert.annotations.items()},
        "starts_at": alert.starts_at.isoformat(),
    }


def build_messages(
    incident: Incident, alerts: Sequence[Alert], suggestion: Proposal | None
) -> list[dict[str, str]]:
    context = {
        "incident": {
            "id": incident.id,
            "title": incident.title,
            "alertname": incident.alertname,
            "severity": incident.severity,
            "target": incident.target,
            "namespace": incident.namespace,
            "firing": incident.firing_count,
        },
        "alerts": [_alert_view(a) for a in alerts[:MAX_ALERTS]],
        "alerts_not_shown": max(0, len(alerts) - MAX_ALERTS),
        "rule_suggestion": suggestion.model_dump(mode="json") if suggestion else None,
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": json.dumps(context, ensure_ascii=False)},
    ]


class LlmProposer:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        limits: ActionLimits | None = None,
        timeout: float = 20,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.limits = limits or ActionLimits()
        self.timeout = timeout

    async def propose(
        self, incident: Incident, alerts: Sequence[Alert], suggestion: Proposal | None
    ) -> Proposal | None:
        """A validated proposal, or None (logged) for any failure."""
        try:
            async with asyncio.timeout(self.timeout):
                content = await self._ask(build_messages(incident, alerts, suggestion))
        except (TimeoutError, httpx.TimeoutException):
            log.warning(
                "llm %s: no answer within %ss for %s", self.model, self.timeout, incident.id
            )
            return None
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("llm %s: request failed for %s: %s", self.model, incident.id, exc)
            return None
        return self._to_proposal(content, incident.id)

    async def _ask(self, messages: list[dict[str, str]]) -> str:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "messages": messages,
            "response_format": {"type": "json_object"},
            "temperature": 0,
        }
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            resp = await client.post(self.url, json=body, headers=headers)
            resp.raise_for_status()
            content = resp.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str):
            raise TypeError("message content is not a string")
        return content

    def _to_proposal(self, content: str, incident_id: str) -> Proposal | None:
        try:
            answer = LlmAnswer.model_validate_json(content)
        except ValidationError as exc:
            log.warning("llm %s: unusable answer for %s: %s", self.model, incident_id, exc)
            return None
        action = None
        if answer.action is not None:
            action = Action(**answer.action.model_dump())
            try:
                self.limits.check(action)
            except InvalidAction as exc:
                log.warning("llm %s: action refused for %s: %s", self.model, incident_id, exc)
                return None
        return Proposal(
            action=action,
            risk=answer.risk,
            summary=answer.summary or answer.reasoning.split("\n", 1)[0][:200],
            reasoning=answer.reasoning,
            confidence=answer.confidence,
            source=ProposalSource.LLM,
            source_name=self.model,
        )
