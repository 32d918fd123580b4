"""A saved playbook as data: its symptoms, the action it proposes and its run record.

Shared by the decision engine (bot.decisions.playbooks, which matches and scores them)
and storage (storage.playbooks, which keeps them), so neither imports the other's logic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.allowlist import (
    ALLOWED_PARAMS,
    ALLOWED_TARGET_KINDS,
    is_dns1123_label,
    is_dns1123_subdomain,
)
from bot.models import Risk, Verb

RECENT_KEPT = 10  # outcomes kept in Playbook.recent, oldest first


class Symptoms(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alertnames: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    severities: list[str] = Field(default_factory=list)


class ActionTemplate(BaseModel):
    """The action to propose; target and namespace come from the incident unless fixed."""

    model_config = ConfigDict(extra="forbid")

    verb: Verb
    target_kind: str = "deployment"
    target_name: str | None = None
    namespace: str | None = None
    params: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _allowed(self) -> Self:
        if self.target_kind not in ALLOWED_TARGET_KINDS[self.verb]:
            raise ValueError(f"{self.verb} cannot target {self.target_kind!r}")
        if self.target_name is not None and not is_dns1123_subdomain(self.target_name):
            raise ValueError(f"target_name {self.target_name!r} is not a valid Kubernetes name")
        if self.namespace is not None and not is_dns1123_label(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} is not a valid Kubernetes name")
        unknown = set(self.params) - ALLOWED_PARAMS[self.verb]
        if unknown:
            raise ValueError(f"{self.verb} does not take {', '.join(sorted(unknown))}")
        return self


class Playbook(BaseModel):
    id: int | None = None
    name: str = Field(min_length=1, max_length=200)
    symptoms: Symptoms = Field(default_factory=Symptoms)
    action: ActionTemplate
    risk: Risk
    description: str = ""
    runs: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    recent: str = Field(default="", pattern=r"^[SF]{0,10}$")
    created_by: str = ""
    created_at: datetime

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.runs if self.runs else None
