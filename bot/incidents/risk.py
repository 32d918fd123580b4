"""Risk floors per verb and how many approvals a risk needs.

A proposer (rule, playbook, LLM) may raise the risk of its action, never
lower it below the verb's minimum: an LLM calling a rollback "low" still
needs the approvals a rollback needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.models import Action, Risk, Verb

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
) -> Risk:
    """The proposed risk, raised to the verb's minimum when it is lower."""
    if action is None:
        return proposed
    floor = minimums.get(action.verb, DEFAULT_MIN_RISK[action.verb])
    return proposed.at_least(floor)


def required_approvals(risk: Risk, critical_approvals: int = 2) -> int:
    """Distinct approvers needed: 1, or `critical_approvals` at critical risk."""
    return max(1, critical_approvals) if risk is Risk.CRITICAL else 1
