"""Inline keyboard of an incident card, as plain JSON-able dicts.

bot/ never handles aiogram markup types; delivery turns these rows into
InlineKeyboardMarkup. Labels come from templates (bot.texts.button).
"""

from __future__ import annotations

from bot.models import (
    REANALYZABLE,
    Decision,
    DecisionState,
    Incident,
    IncidentStatus,
    ProposalSource,
    Silence,
)
from bot.texts import button
from keyboards.callbacks import CardAct, CardCB
from keyboards.urls import button_url_ok

Keyboard = list[list[dict]]


def _cb(key: str, act: CardAct, inc: str, dec: int, locale: str) -> dict:
    return {"text": button(key, locale), "callback_data": CardCB(act=act, inc=inc, dec=dec).pack()}


def _url(key: str, url: str, locale: str) -> dict:
    return {"text": button(key, locale), "url": url}


def is_dry_run(decision: Decision) -> bool:
    # Executors record {"dry_run": true, ...} in Decision.result.
    return bool((decision.result or {}).get("dry_run"))


def can_save_playbook(decision: Decision | None) -> bool:
    return (
        decision is not None
        and decision.state == DecisionState.SUCCEEDED
        and decision.proposal is not None
        and decision.proposal.action is not None
        and decision.proposal.source != ProposalSource.PLAYBOOK
        and not is_dry_run(decision)
    )


def incident_keyboard(
    incident: Incident,
    decision: Decision | None,
    silence: Silence | None,
    *,
    source_url: str | None = None,
    runbook_url: str | None = None,
    links: list[tuple[str, str]] | None = None,
    url_buttons: bool = True,
    locale: str = "en",
) -> Keyboard:
    inc = incident.id
    dec = decision.id if decision else 0
    rows: Keyboard = []

    pending_action = (
        decision is not None
        and decision.state == DecisionState.PENDING
        and decision.proposal is not None
        and decision.proposal.action is not None
    )
    if pending_action:
        rows.append(
            [
                _cb("approve", CardAct.APPROVE, inc, dec, locale),
                _cb("reject", CardAct.REJECT, inc, dec, locale),
            ]
        )
    if can_save_playbook(decision):
        rows.append([_cb("playbook", CardAct.PLAYBOOK, inc, dec, locale)])

    info = [
        _cb("details", CardAct.DETAILS, inc, dec, locale),
        _cb("history", CardAct.HISTORY, inc, dec, locale),
    ]
    # Re-analysis is for open incidents only (the state machine refuses the others).
    if (decision is not None and decision.state in REANALYZABLE
            and incident.status == IncidentStatus.FIRING):
        info.append(_cb("reanalyze", CardAct.REANALYZE, inc, dec, locale))
    rows.append(info)

    extra = []
    if incident.status == IncidentStatus.FIRING:
        # Every open incident can be taken ("I'm on it") or given back.
        if incident.acked_by_id is None:
            extra.append(_cb("ack", CardAct.ACK, inc, dec, locale))
        else:
            extra.append(_cb("unack", CardAct.UNACK, inc, dec, locale))
    if incident.status == IncidentStatus.FIRING and silence is None:
        extra.append(_cb("silence", CardAct.SILENCE, inc, dec, locale))
    if url_buttons:
        for key, url in (("source", source_url), ("runbook", runbook_url)):
            if url and button_url_ok(url):
                extra.append(_url(key, url, locale))
    if extra:
        rows.append(extra)
    # Further links (Grafana's dashboard, panel, silence) in a row of their own.
    more = [_url(key, url, locale) for key, url in links or []
            if url_buttons and button_url_ok(url)]
    if more:
        rows.append(more)
    return rows


def reminder_keyboard(incident_id: str, locale: str = "en") -> Keyboard:
    """A reminder's own Ack button (no decision: an ack is about the incident)."""
    return [[_cb("ack", CardAct.ACK, incident_id, 0, locale)]]
