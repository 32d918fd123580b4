"""The incident card: a pure function of stored state -> Telegram HTML + keyboard.

No clock is read here: identical state renders identical bytes, so delivery can
hash the card and skip edits that would change nothing. Sizes are fitted by
bot.cards.fit; a card or note that still cannot be rendered becomes a short fallback
text, so rendering never blocks the state change it shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.cards.fit import Limits, checked, fit, fits, tidy
from bot.cards.links import extra_links
from bot.models import (
    VALUES_ANNOTATION,
    Alert,
    AlertStatus,
    Approval,
    Decision,
    Incident,
    IncidentStatus,
    Silence,
)
from bot.texts import line, render
from keyboards.incident import incident_keyboard, is_dry_run
from keyboards.urls import button_url_ok

__all__ = ["fits", "tidy"]  # re-exported: command answers fit with the same measure

log = logging.getLogger(__name__)

# Labels that identify an alert instance best, in order of preference.
_IDENTITY_KEYS = (
    "pod",
    "instance",
    "container",
    "deployment",
    "statefulset",
    "node",
    "service",
    "job",
    "endpoint",
)
_SUMMARY_KEYS = ("summary", "message", "title")
_DESCRIPTION_KEYS = ("description", "details")
_RUNBOOK_KEYS = ("runbook_url", "runbook")


@dataclass(frozen=True)
class CardView:
    incident: Incident
    alerts: list[Alert]  # all alerts of the incident
    decision: Decision | None  # the current (non-superseded) decision
    approvals: list[Approval]  # approvals of that decision so far
    silence: Silence | None  # active silence covering the incident
    effect: str | None  # exact effect text (command line / request) of the action
    tz: ZoneInfo
    locale: str = "en"
    truncated_alerts: int = 0  # alerts Alertmanager left out (max_alerts)
    url_buttons: bool = True  # False: show every link as text (delivery retry)


@dataclass(frozen=True)
class Card:
    text: str  # Telegram HTML
    keyboard: list[list[dict]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        """Stable hash of what Telegram would show; equal digest = nothing to edit."""
        blob = json.dumps(
            {"text": self.text, "keyboard": self.keyboard},
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def sorted_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    # Firing first, then oldest first; fingerprint breaks ties deterministically.
    return sorted(
        alerts,
        key=lambda a: (a.status != AlertStatus.FIRING, a.starts_at, a.fingerprint),
    )


def varying_keys(alerts: list[Alert]) -> list[str]:
    """Label keys whose values differ between alerts (what tells them apart)."""
    if len(alerts) < 2:
        return []
    keys = sorted({k for a in alerts for k in a.labels})
    varying = [k for k in keys if len({a.labels.get(k) for a in alerts}) > 1]
    preferred = [k for k in _IDENTITY_KEYS if k in varying]
    return preferred + [k for k in varying if k not in preferred]


def identity(alert: Alert, keys: list[str], limit: int) -> str:
    parts = [f"{k}={alert.labels[k]}" for k in keys if k in alert.labels]
    if not parts:
        parts = [f"{k}={alert.labels[k]}" for k in _IDENTITY_KEYS if k in alert.labels][:1]
    return line(", ".join(parts) or alert.fingerprint, limit)


def instance_list(alerts: list[Alert], lim: Limits) -> tuple[list[dict], int]:
    """First few distinct alert identities, plus how many were left out."""
    if len(alerts) < 2:
        return [], 0
    keys = varying_keys(alerts)
    seen: dict[str, bool] = {}
    for alert in alerts:
        text = identity(alert, keys, lim.label)
        resolved = alert.status == AlertStatus.RESOLVED
        seen[text] = seen.get(text, True) and resolved
    items = [{"text": t, "resolved": r} for t, r in seen.items()]
    shown = items[: lim.alerts]
    return shown, len(items) - len(shown)


def _first(annotations: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((annotations[k] for k in keys if annotations.get(k)), "")


def card_links(alerts: list[Alert]) -> tuple[str, str]:
    """(source_url, runbook_url) from the first alert that has each."""
    source = next((a.generator_url for a in alerts if a.generator_url), "")
    runbook = next((r for a in alerts if (r := _first(a.annotations, _RUNBOOK_KEYS))), "")
    return source.strip(), runbook.strip()


MAX_NAMES = 5  # approver names listed on the card (the count is always exact)


def approver_names(decision: Decision | None, approvals: list[Approval]) -> list[str]:
    """Distinct approvers in approval order; falls back to who decided."""
    ordered = sorted(approvals, key=lambda a: (a.at, a.user_id))
    by_user = {a.user_id: a.user_name or str(a.user_id) for a in reversed(ordered)}
    names = [by_user[uid] for uid in dict.fromkeys(a.user_id for a in ordered)]
    if not names and decision is not None and decision.decided_by:
        names = [decision.decided_by]
    return names


def _context(view: CardView, lim: Limits) -> dict[str, Any]:
    inc, dec = view.incident, view.decision
    alerts = sorted_alerts(view.alerts)
    lead = alerts[0] if alerts else None
    summary = _first(lead.annotations, _SUMMARY_KEYS) if lead else ""
    if not summary and inc.title and inc.title != inc.alertname:
        summary = inc.title
    description = _first(lead.annotations, _DESCRIPTION_KEYS) if lead else ""
    source, runbook = card_links(alerts)
    text_links = [
        (key, url)
        for key, url in (("source", source), ("runbook", runbook), *extra_links(alerts))
        if url and not (view.url_buttons and button_url_ok(url))
    ]
    instances, more = instance_list(alerts, lim)
    prop = dec.proposal if dec else None
    approvals = [a for a in view.approvals if dec is None or a.decision_id == dec.id]
    approved_at = None
    if dec is not None:
        approved_at = dec.decided_at or max((a.at for a in approvals), default=None)
    result = (dec.result or {}) if dec else {}
    names = approver_names(dec, approvals)
    return {
        "inc": inc,
        "tz": view.tz,
        "lim": lim,
        "resolved": inc.status == IncidentStatus.RESOLVED,
        "summary": summary,
        "description": description,
        "values": lead.annotations.get(VALUES_ANNOTATION, "") if lead else "",
        "text_links": text_links,
        "instances": instances,
        "more": more,
        "truncated": max(0, view.truncated_alerts),
        "silence": view.silence,
        "dec": dec,
        "prop": prop,
        "action": prop.action if prop else None,
        "effect": view.effect,
        "approvers": names[:MAX_NAMES],
        "approval_count": len(names),
        "approved_at": approved_at,
        "dry_run": bool(dec and is_dry_run(dec)),
        "error": str(result.get("error") or (dec.reason if dec else "") or "unknown error"),
    }


def render_text(view: CardView, lim: Limits) -> str:
    return tidy(render("card.html", locale=view.locale, **_context(view, lim)))


def _fallback_card_text(view: CardView) -> str:
    inc = view.incident
    return checked(render("card_fallback.html", locale=view.locale, inc=inc,
                          state=str(view.decision.state) if view.decision else ""),
                   "card_fallback.html")


def card_text(view: CardView) -> str:
    """The card's text: the first tier that fits, or (a bug) the short fallback."""
    try:
        return fit(lambda lim: render_text(view, lim))
    except Exception:  # the card must still show the state, so never raise here
        log.exception("card of %s cannot be rendered; sending the short form", view.incident.id)
        return _fallback_card_text(view)


def render_card(view: CardView) -> Card:
    text = card_text(view)
    source, runbook = card_links(sorted_alerts(view.alerts))
    keyboard = incident_keyboard(
        view.incident,
        view.decision,
        view.silence,
        source_url=source,
        runbook_url=runbook,
        links=extra_links(sorted_alerts(view.alerts)),
        url_buttons=view.url_buttons,
        locale=view.locale,
    )
    return Card(text=text, keyboard=keyboard)


# --- thread replies and command answers -------------------------------------

THREAD_KINDS = (
    "resolved",
    "approved",
    "approval_progress",
    "rejected",
    "reason_recorded",
    "outcome",
    "expired",
    "cancelled",
    "silenced",
    "stale_press",
    "reanalyzing",
    "playbook_saved",
    "silence_expired",
    "acked",
    "unacked",
    "reminder",
    "escalation",
)


def render_message(template: str, /, *, tz: ZoneInfo, locale: str = "en", **ctx: Any) -> str:
    """Render one standalone message (Telegram HTML); DoesNotFit over the limits."""
    return checked(render(template, locale=locale, tz=tz, **ctx), template)


def render_thread(kind: str, /, *, tz: ZoneInfo, locale: str = "en", **ctx: Any) -> str:
    """A reply in the incident thread; see templates/en/thread/<kind>.html for ctx."""
    if kind not in THREAD_KINDS:
        raise KeyError(f"unknown thread message {kind!r}")
    return render_message(f"thread/{kind}.html", tz=tz, locale=locale, **ctx)


def render_note_fallback(
    kind: str, /, *, locale: str = "en", incident: Incident, succeeded: bool | None = None
) -> str:
    """What a thread note says when it cannot be rendered: short, no values but the id
    (and, for an outcome, whether the action succeeded)."""
    return checked(render("thread/fallback.html", locale=locale, kind=kind, inc=incident,
                          succeeded=succeeded), "thread/fallback.html")


def render_whoami(
    *,
    user_id: int,
    name: str,
    is_approver: bool,
    chat_id: int | None = None,
    tz: ZoneInfo,
    locale: str = "en",
) -> str:
    return render_message(
        "commands/whoami.html",
        tz=tz,
        locale=locale,
        user_id=user_id,
        name=name,
        is_approver=is_approver,
        chat_id=chat_id,
    )
