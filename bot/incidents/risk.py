"""Risk floors per verb and how many approvals a risk needs.

A proposer (rule, playbook, LLM) may raise the risk of its action, never
lower it below the verb's minimum: an LLM calling a rollback "low" still
needs the approvals a rollback needs. An action in a critical namespace
(CRITICAL_NAMESPACES) is critical whatever its verb, so it needs two people.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from bot.models import Action, Proposal, Risk, Verb

DEFAULT_MIN_RISK: Mapping[Verb, Risk] = {
    Verb.SCALE: Risk.LOW,  # reversible, bounded by replicas_min/max
    Verb.ROLLOUT_RESTART: Risk.MEDIUM,  # rolling, but every pod restarts
    Verb.DELETE_POD: Risk.MEDIUM,  # one pod, recreated by its controller
    Verb.ROLLOUT_UNDO: Risk.HIGH,  # changes the running code version
}


def min_risks(overrides: Mapping[str, str] | None = None) -> dict[Verb, Risk]:
    """Defaults with config overrides applied, e.g. {"scale": "medium"}.

    Raises ValueError on an unknown verb or risk, so a config typo fails at start-up.
    """
    result = dict(DEFAULT_MIN_RISK)
    for verb, risk in (overrides or {}).items():
        result[Verb(verb)] = Risk(risk)
    return result


def effective_risk(
    action: Action | None,
    proposed: Risk,
    minimums: Mapping[Verb, Risk] = DEFAULT_MIN_RISK,
    critical_namespaces: Set[str] = frozenset(),
) -> Risk:
    """The proposed risk, raised to the verb's minimum (critical in a critical namespace)."""
    if action is None:
        return proposed
    if action.namespace in critical_namespaces:
        return Risk.CRITICAL
    floor = minimums.get(action.verb, DEFAULT_MIN_RISK[action.verb])
    return proposed.at_least(floor)


def gate_risk(
    proposal: Proposal,
    minimums: Mapping[Verb, Risk] = DEFAULT_MIN_RISK,
    critical_namespaces: Set[str] = frozenset(),
) -> Proposal:
    """The proposal with its risk floored and `critical_namespace` set, so the card can say
    why it needs more than one approver."""
    action = proposal.action
    return proposal.model_copy(update={
        "risk": effective_risk(action, proposal.risk, minimums, critical_namespaces),
        "critical_namespace": action is not None and action.namespace in critical_namespaces,
    })


def required_approvals(risk: Risk, critical_approvals: int = 2) -> int:
    """Distinct approvers needed: 1, or `critical_approvals` at critical risk."""
    return max(1, critical_approvals) if risk is Risk.CRITICAL else 1
