"""Playbooks: remediations the team saved, offered again for similar incidents.

Similarity
----------
An incident has four symptoms: its alertname, its service (the ``service``
label all its firing alerts share, else the incident's target), its namespace
and its severity. A playbook lists accepted values per symptom. Each symptom
scores 1 when the playbook's list contains the incident's value (compared
case-insensitively) or when the list is empty (a wildcard), else 0:

    similarity = 0.50·alertname + 0.20·service + 0.15·namespace + 0.15·severity

so it lies in [0, 1]. A playbook is used when similarity ≥ 0.85 and it has
either never run or succeeded in at least 80% of its real runs. 0.85 means
the alertname must match and at most one of namespace or severity may
differ; a different service alone is not enough (0.80).

Worked examples, for the playbook
``alertnames=["KubePodCrashLooping"], services=["cart-svc"], namespaces=["shop"], severities=[]``:

1. KubePodCrashLooping, service cart-svc, namespace shop, severity warning:
   0.50 + 0.20 + 0.15 + 0.15 (empty severities: wildcard) = 1.00 -> used.
2. KubePodCrashLooping, service cart-svc, namespace shop-staging, severity critical:
   0.50 + 0.20 + 0 + 0.15 = 0.85 -> used (exactly at the threshold).
3. KubePodCrashLooping, service checkout, namespace shop, severity warning:
   0.50 + 0 + 0.15 + 0.15 = 0.80 -> not used.

Statistics
----------
Only real executions count (dry runs never do). ``recent`` holds the last 10
outcomes, oldest first, e.g. "SSFS". A playbook may auto-approve only at low
risk, after ``min_runs`` successes, with no failure in the last ``window`` runs.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.decisions.context import first_present, incident_labels
from bot.decisions.rules import DEFAULT_TARGET_LABELS, decision_text
from bot.models import Action, Alert, Incident, Proposal, ProposalSource, Risk
from bot.playbook_types import ActionTemplate, Playbook, Symptoms

if TYPE_CHECKING:
    from storage.playbooks import PlaybookRepo

# Weights in hundredths, so sums are exact (0.5 + 0.2 + 0.15 is exactly 0.85).
WEIGHTS = {"alertname": 50, "service": 20, "namespace": 15, "severity": 15}
SIMILARITY_THRESHOLD = 0.85
MIN_SUCCESS_RATE = 0.8


class PlaybookFileError(ValueError):
    """A playbook TOML file that cannot be imported: `errors` holds one readable line per
    problem (which playbook, which field, what is wrong); str() joins them."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


# ------------------------------------------------------------------ matching


def incident_symptoms(incident: Incident, alerts: Sequence[Alert]) -> dict[str, str]:
    labels = incident_labels(incident, alerts)
    return {
        "alertname": incident.alertname,
        "service": labels.get("service") or incident.target,
        "namespace": incident.namespace,
        "severity": incident.severity,
    }


def similarity(symptoms: Symptoms, observed: dict[str, str]) -> float:
    """Weighted overlap in [0, 1]; see the module docstring."""
    lists = {
        "alertname": symptoms.alertnames,
        "service": symptoms.services,
        "namespace": symptoms.namespaces,
        "severity": symptoms.severities,
    }
    score = 0
    for key, weight in WEIGHTS.items():
        accepted = {v.casefold() for v in lists[key]}
        if not accepted or observed[key].casefold() in accepted:
            score += weight
    return score / 100


def is_trusted(playbook: Playbook) -> bool:
    """Never run, or successful in at least 80% of its real runs."""
    rate = playbook.success_rate
    return rate is None or rate >= MIN_SUCCESS_RATE


def best_match(
    playbooks: Sequence[Playbook], incident: Incident, alerts: Sequence[Alert]
) -> tuple[Playbook, float] | None:
    """The most similar usable playbook; ties go to the better record, then the older one."""
    observed = incident_symptoms(incident, alerts)
    usable = [
        (pb, score)
        for pb in playbooks
        if (score := similarity(pb.symptoms, observed)) >= SIMILARITY_THRESHOLD and is_trusted(pb)
    ]
    if not usable:
        return None
    return min(usable, key=lambda item: (-item[1], -(item[0].success_rate or 0.0), item[0].id or 0))


def target_labels(target_kind: str) -> list[str]:
    if target_kind == "pod":
        return ["pod"]
    return [target_kind, *(n for n in DEFAULT_TARGET_LABELS if n != target_kind)]


def playbook_action(
    playbook: Playbook, incident: Incident, alerts: Sequence[Alert]
) -> Action | None:
    """The concrete action for this incident, or None when the incident names no target.

    Not validated here: the caller validates it like any other proposal.
    """
    tpl = playbook.action
    labels = incident_labels(incident, alerts)
    target = tpl.target_name or first_present(labels, target_labels(tpl.target_kind))
    namespace = tpl.namespace or incident.namespace
    if not target or not namespace:
        return None
    return Action(
        verb=tpl.verb,
        target_kind=tpl.target_kind,
        target_name=target,
        namespace=namespace,
        params=dict(tpl.params),
    )


def playbook_proposal(
    playbook: Playbook, score: float, action: Action, locale: str = "en"
) -> Proposal:
    """The proposal a matching playbook makes; the description is the team's own words."""
    matches = decision_text(
        "playbook_reasoning",
        locale,
        name=playbook.name,
        similarity=score,
        runs=playbook.runs,
        successes=playbook.successes,
    )
    return Proposal(
        action=action,
        risk=playbook.risk,
        summary=playbook.description.split("\n", 1)[0][:200]
        or decision_text("playbook_summary", locale, name=playbook.name),
        reasoning=matches + (f"\n{playbook.description}" if playbook.description else ""),
        confidence=score,
        source=ProposalSource.PLAYBOOK,
        source_name=playbook.name,
    )


def auto_approve_eligible(
    playbook: Playbook, risk: Risk, min_runs: int = 5, window: int = 5, locale: str = "en"
) -> tuple[bool, str]:
    """Whether a proposal from `playbook` at `risk` may skip human approval, and why.

    The why is shown on the card when the proposal auto-approves, so it is in `locale`.
    """
    if risk is not Risk.LOW:
        return False, decision_text("auto_only_low_risk", locale, risk=str(risk))
    if playbook.successes < min_runs:
        return False, decision_text(
            "auto_needs_runs", locale, successes=playbook.successes, min_runs=min_runs
        )
    last = playbook.recent[-window:]
    if "F" in last:
        return False, decision_text("auto_recent_failure", locale, window=window, recent=last)
    return True, decision_text(
        "auto_eligible", locale, successes=playbook.successes, window=window
    )


# ------------------------------------------------------------------ creation


async def create_from_decision(
    repo: PlaybookRepo,
    incident: Incident,
    action: Action,
    risk: Risk,
    description: str,
    created_by: str,
    alerts: Sequence[Alert] = (),
    now: datetime | None = None,
) -> Playbook:
    """Save an approved action as a playbook ("Save as playbook"). Idempotent per incident.

    Target and namespace stay templated when the incident itself names them, so
    the playbook also fits the same failure of another deployment.
    """
    observed = incident_symptoms(incident, alerts)
    labels = incident_labels(incident, alerts)
    from_incident = first_present(labels, target_labels(action.target_kind))
    playbook = Playbook(
        name=f"{incident.alertname}: {action.verb} {action.target_kind} ({incident.id})",
        symptoms=Symptoms(
            alertnames=[incident.alertname],
            services=[observed["service"]] if labels.get("service") else [],
            namespaces=[incident.namespace] if incident.namespace else [],
        ),
        action=ActionTemplate(
            verb=action.verb,
            target_kind=action.target_kind,
            target_name=None if action.target_name == from_incident else action.target_name,
            namespace=None if action.namespace == incident.namespace else action.namespace,
            # current_replicas describes one moment, not the remedy
            params={k: int(v) for k, v in action.params.items() if k != "current_replicas"},
        ),
        risk=risk,
        description=description,
        created_by=created_by,
        created_at=now or datetime.now(UTC),
    )
    return await repo.add(playbook) or await repo.get_by_name(playbook.name) or playbook


# ------------------------------------------------------------------ TOML


class _PlaybookEntry(Playbook):
    model_config = ConfigDict(extra="forbid")


class _PlaybookFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: list[_PlaybookEntry] = Field(default_factory=list)


def parse_toml(text: str) -> list[Playbook]:
    """The playbooks of a file in the format of docs/playbooks.md; PlaybookFileError lists
    every problem at once, one line each."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message names the line and column
        raise PlaybookFileError([f"not valid TOML: {exc}"]) from exc
    try:
        entries = _PlaybookFile.model_validate(data).playbook
    except ValidationError as exc:
        raise PlaybookFileError(_error_lines(exc, data)) from exc
    assigned = [f"{_which(i, e.name)}: id is assigned by the database, leave it out"
                for i, e in enumerate(entries) if e.id is not None]
    if assigned:
        raise PlaybookFileError(assigned)
    return [Playbook.model_validate(e.model_dump()) for e in entries]


def _which(index: int, name: object) -> str:
    """The n-th [[playbook]] table (1-based, as a person counts), with its name if any."""
    named = f" {json.dumps(name, ensure_ascii=False)[:80]}" if isinstance(name, str) else ""
    return f"playbook {index + 1}{named}"


def _error_lines(exc: ValidationError, data: dict[str, Any]) -> list[str]:
    found = data.get("playbook")
    tables: list[Any] = found if isinstance(found, list) else []
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "top level"
        if len(loc) >= 2 and loc[0] == "playbook" and isinstance(loc[1], int):
            index = loc[1]
            table = tables[index] if index < len(tables) else None
            where = _which(index, table.get("name") if isinstance(table, dict) else None)
            loc = loc[2:]
        field = ".".join(str(part) for part in loc) or "table"
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "missing (required)"
        elif err["type"] == "extra_forbidden":
            message = "unknown key (see docs/playbooks.md for the keys)"
        elif not isinstance(err.get("input"), dict | list):
            got = json.dumps(err.get("input"), ensure_ascii=False, default=str)
            message += f" (got {got[:60]})"
        lines.append(f"{where}: {field}: {message}")
    return lines


async def import_toml(repo: PlaybookRepo, text: str) -> int:
    """Create or replace (by name) every playbook in `text`, in one transaction."""
    return await repo.upsert_many(parse_toml(text))


async def export_toml(repo: PlaybookRepo) -> str:
    return dump_toml(await repo.list_all())


def dump_toml(playbooks: Sequence[Playbook]) -> str:
    """TOML that `parse_toml` reads back into equal playbooks (ids aside)."""
    blocks = []
    for pb in playbooks:
        lines = ["[[playbook]]"]
        for key in ("name", "description", "risk", "created_by", "created_at"):
            lines.append(f"{key} = {_toml(getattr(pb, key))}")
        for key in ("runs", "successes", "recent"):
            lines.append(f"{key} = {_toml(getattr(pb, key))}")
        lines.append("")
        lines.append("[playbook.symptoms]")
        for key, value in pb.symptoms.model_dump().items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")
        lines.append("[playbook.action]")
        for key, value in pb.action.model_dump(mode="json").items():
            if value is not None:
                lines.append(f"{key} = {_toml(value)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, str):
        # A JSON string is a TOML basic string, except that TOML also wants DEL escaped.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (
            f"{k if _BARE_KEY.fullmatch(k) else _toml(k)} = {_toml(v)}" for k, v in value.items()
        )
        return "{ " + ", ".join(items) + " }" if value else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
