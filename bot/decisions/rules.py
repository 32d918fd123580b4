"""Rule engine: alert labels -> a proposal, from a TOML rule file.

The rule answer is the floor of the decision cascade, so `RuleEngine.propose`
always answers and never raises. Label values reach an action only after
`validate_action`; a value that fails it gives an invalid reason instead of a
proposal. The file format is described at the top of default_rules.toml.

The rule's summary and reasoning are the team's words, used as written, unless the rule
names `texts` (the built-in rules do): then they come from
templates/<locale>/decisions/rules.html in the configured locale. What this
module adds itself (the conservative fallback, why there is no safe action, invalid
reasons) comes from templates/<locale>/decisions/*.html.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot import texts
from bot.decisions.context import first_present, incident_annotations, incident_labels
from bot.execution.names import INVALID_TEMPLATE, ActionLimits, InvalidAction, invalid_text
from bot.models import Action, Alert, Incident, Proposal, ProposalSource, Risk, Verb

log = logging.getLogger(__name__)

DEFAULT_TARGET_LABELS = ["deployment", "service", "app"]

PROPOSALS_TEMPLATE = "decisions/proposals.html"
# Every key of decision_text; each has a macro in templates/<locale>/decisions/proposals.html.
TEXT_KEYS = (
    "manual_summary",
    "no_rule_matched",
    "rule_engine_failed",
    "no_target_label",
    "no_namespace_label",
    "replicas_at_cap",
    "replicas_unknown",
    "playbook_summary",
    "playbook_reasoning",
    "auto_only_low_risk",
    "auto_needs_runs",
    "auto_recent_failure",
    "auto_eligible",
)


def decision_text(key: str, locale: str = texts.DEFAULT_LOCALE, **params: object) -> str:
    """A built-in proposal text (TEXT_KEYS) as plain text in `locale` (falling back to en)."""
    return texts.macro_text(PROPOSALS_TEMPLATE, key, locale, **params)


def invalid_reason(
    source: str, name: str, exc: InvalidAction, locale: str = texts.DEFAULT_LOCALE
) -> str:
    """The card's invalid reason: which proposer ("rule pod-crash") and why, in `locale`."""
    reason = invalid_text(exc, locale)
    return texts.macro_text(INVALID_TEMPLATE, "from_source", locale, source=str(source),
                            name=name, reason=reason)


RULE_TEXTS_TEMPLATE = "decisions/rules.html"


def rule_text(rule: Rule, part: str, locale: str, values: Mapping[str, str]) -> str:
    """The rule's summary or reasoning: its `texts` macros in `locale` when it names them
    (built-in rules do), else the words of the rule file with {placeholders} filled."""
    if rule.texts:
        try:
            return texts.macro_text(RULE_TEXTS_TEMPLATE, f"{rule.texts}_{part}", locale,
                                    **values)
        except KeyError:
            log.warning("rule %s: no text %s_%s; using the rule file's words", rule.name,
                        rule.texts, part)
    return _fill(getattr(rule, part), values)


class RuleFileError(ValueError):
    """The rule file cannot be used; the message names the file and the problem."""


class ActionTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verb: Verb
    target_kind: str = "deployment"
    target_from: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_LABELS))
    namespace_from: list[str] = Field(default_factory=lambda: ["namespace"])
    replicas: int | None = None
    replicas_delta: int | None = None
    replicas_max: int | None = None
    current_replicas_from: list[str] = Field(default_factory=lambda: ["replicas"])


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    match: dict[str, str] = Field(default_factory=dict)
    match_regex: dict[str, re.Pattern[str]] = Field(default_factory=dict)
    risk: Risk
    summary: str
    reasoning: str
    texts: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    action: ActionTemplate | None = None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Every exact key equal and every regex key full-matching (a missing label fails)."""
        return all(labels.get(k) == v for k, v in self.match.items()) and all(
            k in labels and p.fullmatch(labels[k]) for k, p in self.match_regex.items()
        )


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: list[Rule]


@dataclass(frozen=True)
class RuleOutcome:
    """Either a proposal or the reason the matched rule could not produce a valid action."""

    proposal: Proposal | None
    invalid_reason: str | None
    rule_name: str


def parse_rules(text: str, origin: str = "<rules>") -> list[Rule]:
    try:
        return _RuleFile.model_validate(tomllib.loads(text)).rule
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise RuleFileError(f"{origin}: {exc}") from exc


def default_rules() -> list[Rule]:
    text = resources.files("bot.decisions").joinpath("default_rules.toml").read_text("utf-8")
    return parse_rules(text, "default_rules.toml")


def load_rules(path: str | Path | None) -> list[Rule]:
    """Rules from `path`, or the built-in defaults when no path is configured."""
    if not path:
        return default_rules()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError(f"{path}: {exc.strerror or exc}") from exc
    return parse_rules(text, str(path))


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Replace {name} placeholders; unknown names stay as written."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def _as_count(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


class RuleEngine:
    def __init__(
        self,
        rules: Sequence[Rule],
        limits: ActionLimits | None = None,
        locale: str = texts.DEFAULT_LOCALE,
    ) -> None:
        self.rules = list(rules)
        self.limits = limits or ActionLimits()
        self.locale = locale

    @classmethod
    def from_path(
        cls,
        path: str | Path | None,
        limits: ActionLimits | None = None,
        locale: str = texts.DEFAULT_LOCALE,
    ) -> RuleEngine:
        return cls(load_rules(path), limits, locale)

    def propose(self, incident: Incident, alerts: Sequence[Alert]) -> RuleOutcome:
        try:
            labels = incident_labels(incident, alerts)
            for rule in self.rules:
                if rule.matches(labels):
                    return self._apply(rule, incident, labels, incident_annotations(alerts))
            fallback = conservative_proposal(incident, "no_rule_matched", self.locale)
            return RuleOutcome(fallback, None, "")
        except Exception:  # the floor of the cascade must always answer
            log.exception("rule engine failed for %s", incident.id)
            fallback = conservative_proposal(incident, "rule_engine_failed", self.locale)
            return RuleOutcome(fallback, None, "")

    def _apply(
        self,
        rule: Rule,
        incident: Incident,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
    ) -> RuleOutcome:
        tpl = rule.action
        target = first_present(labels, tpl.target_from) if tpl else None
        namespace = (first_present(labels, tpl.namespace_from) if tpl else None) or (
            incident.namespace
        )
        values = {
            "alertname": incident.alertname,
            "severity": incident.severity,
            "target": target or incident.target,
            "namespace": namespace,
        }

        locale = self.locale
        manual = decision_text("manual_summary", locale, alertname=incident.alertname)

        def proposal(action: Action | None, why: str = "") -> Proposal:
            reasoning = rule_text(rule, "reasoning", locale, values)
            return Proposal(
                action=action,
                risk=rule.risk,
                summary=rule_text(rule, "summary", locale, values) if action or not tpl
                else manual,
                reasoning=f"{reasoning}\n{why}" if why else reasoning,
                source=ProposalSource.RULE,
                source_name=rule.name,
            )

        if tpl is None:
            return RuleOutcome(proposal(None), None, rule.name)
        if not target or not namespace:
            why = (
                decision_text("no_target_label", locale, labels=tuple(tpl.target_from))
                if not target
                else decision_text("no_namespace_label", locale)
            )
            return RuleOutcome(proposal(None, why), None, rule.name)
        params, why = self._params(tpl, labels, annotations)
        if params is None:
            return RuleOutcome(proposal(None, why), None, rule.name)
        action = Action(
            verb=tpl.verb,
            target_kind=tpl.target_kind,
            target_name=target,
            namespace=namespace,
            params=params,
        )
        try:
            self.limits.check(action)
        except InvalidAction as exc:
            reason = invalid_reason(ProposalSource.RULE, rule.name, exc, locale)
            return RuleOutcome(None, reason, rule.name)
        return RuleOutcome(proposal(action), None, rule.name)

    def _params(
        self, tpl: ActionTemplate, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> tuple[dict[str, int | str] | None, str]:
        """Action params, or None plus why there is no safe count."""
        if tpl.verb is not Verb.SCALE:
            return {}, ""
        cap = min(self.limits.replicas_max, tpl.replicas_max or self.limits.replicas_max)
        if tpl.replicas_delta is not None:
            current = _as_count(
                first_present(labels, tpl.current_replicas_from)
                or first_present(annotations, tpl.current_replicas_from)
            )
            if current is not None:
                wanted = max(self.limits.replicas_min, min(cap, current + tpl.replicas_delta))
                if wanted == current:
                    return None, decision_text("replicas_at_cap", self.locale, current=current)
                # --current-replicas makes kubectl refuse if someone scaled in between.
                return {"replicas": wanted, "current_replicas": current}, ""
        if tpl.replicas is not None:
            return {"replicas": min(cap, tpl.replicas)}, ""
        return None, decision_text("replicas_unknown", self.locale)


def conservative_proposal(
    incident: Incident, why: str, locale: str = texts.DEFAULT_LOCALE
) -> Proposal:
    """The answer when nothing else can be trusted: no action, a human looks.

    `why` is a TEXT_KEYS key: "no_rule_matched" or "rule_engine_failed".
    """
    return Proposal(
        action=None,
        risk=Risk.LOW,
        summary=decision_text("manual_summary", locale, alertname=incident.alertname),
        reasoning=decision_text(why, locale),
        source=ProposalSource.RULE,
        source_name="fallback",
    )
