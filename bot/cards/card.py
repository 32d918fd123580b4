"""The incident card: a pure function of stored state -> Telegram HTML + keyboard.

No clock is read here: identical state renders identical bytes, so delivery can
hash the card and skip edits that would change nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bot.cards.links import button_url_ok
from bot.models import Alert, AlertStatus, Approval, Decision, Incident, IncidentStatus, Silence
from bot.texts import line, parsed_length, render, since
from keyboards.incident import incident_keyboard, is_dry_run

MAX_TEXT = 4096  # Telegram: characters after entity parsing
MAX_RAW = 30 * 1024  # Telegram refuses raw input over 32 KiB; keep a margin

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
class Limits:
    """Clip sizes (characters of raw value) used by templates."""

    summary: int = 300
    description: int = 1000
    label: int = 80
    alerts: int = 8
    effect: int = 600
    reasoning: int = 600
    name: int = 64
    reason: int = 300
    link: int = 300


# Tried in order until the card fits; the last one fits whatever the input
# (every value is clipped, so its size is bounded by construction).
TIERS = (
    Limits(),
    Limits(
        summary=200,
        description=400,
        label=60,
        alerts=5,
        effect=300,
        reasoning=300,
        name=48,
        reason=200,
        link=150,
    ),
    Limits(
        summary=100,
        description=0,
        label=40,
        alerts=3,
        effect=160,
        reasoning=120,
        name=32,
        reason=100,
        link=80,
    ),
)


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


def fits(text: str) -> bool:
    return parsed_length(text) <= MAX_TEXT and len(text.encode("utf-8")) <= MAX_RAW


def tidy(text: str) -> str:
    """Normalize template whitespace: no trailing spaces, at most one blank line."""
    text = "\n".join(ln.rstrip() for ln in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


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
        for key, url in (("source", source), ("runbook", runbook))
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


def render_card(view: CardView) -> Card:
    for lim in TIERS:
        text = render_text(view, lim)
        if fits(text):
            break
    else:  # unreachable by construction of the last tier; fail loudly in tests
        raise ValueError("card does not fit even with the smallest limits")
    source, runbook = card_links(sorted_alerts(view.alerts))
    keyboard = incident_keyboard(
        view.incident,
        view.decision,
        view.silence,
        source_url=source,
        runbook_url=runbook,
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
)


def render_message(template: str, /, *, tz: ZoneInfo, locale: str = "en", **ctx: Any) -> str:
    """Render one standalone message (Telegram HTML), checked against the limits."""
    text = tidy(render(template, locale=locale, tz=tz, **ctx))
    if not fits(text):  # templates clip every value; this is a bug guard
        raise ValueError(f"{template} renders over Telegram's limits")
    return text


def render_thread(kind: str, /, *, tz: ZoneInfo, locale: str = "en", **ctx: Any) -> str:
    """A reply in the incident thread; see templates/en/thread/<kind>.html for ctx."""
    if kind not in THREAD_KINDS:
        raise KeyError(f"unknown thread message {kind!r}")
    return render_message(f"thread/{kind}.html", tz=tz, locale=locale, **ctx)


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


# Details: at most 3 messages, each well under the limit.
DETAILS_MAX_MESSAGES = 3
DETAILS_MAX_ALERTS = 10  # alerts shown in full; the head summarizes the rest
_DETAILS_BUDGET = 3800  # leaves room for the "… N more alerts" line
_DETAILS_MAX_LABELS = 30
_DETAILS_MAX_DISTINCT = 12
_DETAILS_VALUES = 5
_ALERT_MAX_LABELS = 20
_ALERT_MAX_ANNOTATIONS = 6


def _fit(render_fn: Callable[[Limits], str], budget: int) -> str:
    """First rendering within budget, trying smaller limits; the smallest always fits."""
    text = ""
    for lim in TIERS:
        text = render_fn(lim)
        if parsed_length(text) <= budget:
            return text
    return text


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    """Entries shared (same value) by every mapping."""
    if not maps:
        return {}
    return {k: v for k, v in sorted(maps[0].items()) if all(m.get(k) == v for m in maps)}


def _details_head(view: CardView, alerts: list[Alert], keys: list[str]) -> str:
    labels = _common([a.labels for a in alerts])
    annotations = _common([a.annotations for a in alerts])
    urls = {a.generator_url for a in alerts}
    distinct = []
    for k in keys[:_DETAILS_MAX_DISTINCT]:
        values = list(dict.fromkeys(a.labels[k] for a in alerts if k in a.labels))
        distinct.append({"key": k, "count": len(values), "shown": values[:_DETAILS_VALUES]})
    hidden = (
        max(0, len(labels) - _DETAILS_MAX_LABELS)
        + max(0, len(keys) - _DETAILS_MAX_DISTINCT)
        + max(0, len(annotations) - _ALERT_MAX_ANNOTATIONS)
    )

    def draw(lim: Limits) -> str:
        return tidy(
            render(
                "thread/details_head.html",
                locale=view.locale,
                tz=view.tz,
                lim=lim,
                inc=view.incident,
                total=len(alerts),
                truncated=max(0, view.truncated_alerts),
                common=list(labels.items())[:_DETAILS_MAX_LABELS],
                annotations=list(annotations.items())[:_ALERT_MAX_ANNOTATIONS],
                url=urls.pop() if len(urls) == 1 else "",
                distinct=distinct,
                hidden_labels=hidden,
                prop=view.decision.proposal if view.decision else None,
                effect=view.effect,
            )
        )

    return _fit(draw, _DETAILS_BUDGET)


def _details_alert(view: CardView, alert: Alert, index: int, alerts: list[Alert]) -> str:
    # Only what tells this alert apart: shared labels/annotations are in the head.
    shared_labels = _common([a.labels for a in alerts])
    shared_notes = _common([a.annotations for a in alerts])
    labels = [(k, v) for k, v in sorted(alert.labels.items()) if k not in shared_labels]
    annotations = [(k, v) for k, v in sorted(alert.annotations.items()) if k not in shared_notes]
    show_url = len({a.generator_url for a in alerts}) > 1
    hidden = max(0, len(labels) - _ALERT_MAX_LABELS) + max(
        0, len(annotations) - _ALERT_MAX_ANNOTATIONS
    )

    def draw(lim: Limits) -> str:
        return tidy(
            render(
                "thread/details_alert.html",
                locale=view.locale,
                tz=view.tz,
                lim=lim,
                alert=alert,
                index=index,
                ref=view.incident.opened_at,
                hidden=hidden,
                labels=labels[:_ALERT_MAX_LABELS],
                annotations=annotations[:_ALERT_MAX_ANNOTATIONS],
                url=alert.generator_url if show_url else "",
            )
        )

    return _fit(draw, _DETAILS_BUDGET // 2)


def render_details(view: CardView) -> list[str]:
    """The Details answer: shared facts, distinct label values, then the first few
    alerts in full (at most 3 messages), then what the proposers saw (related knowledge,
    tool calls, each engine's answer) in one more; each within Telegram's limit."""
    alerts = sorted_alerts(view.alerts)
    keys = varying_keys(alerts)
    messages = [_details_head(view, alerts, keys)]
    shown = 0
    for index, alert in enumerate(alerts[:DETAILS_MAX_ALERTS], start=1):
        block = _details_alert(view, alert, index, alerts)
        joined = messages[-1] + "\n\n" + block
        if parsed_length(joined) <= _DETAILS_BUDGET:
            messages[-1] = joined
        elif len(messages) < DETAILS_MAX_MESSAGES:
            messages.append(block)
        else:
            break
        shown += 1
    if shown < len(alerts):
        more = tidy(
            render("thread/details_more.html", locale=view.locale, count=len(alerts) - shown)
        )
        messages[-1] = messages[-1] + "\n\n" + more
    evidence = _details_evidence(view)
    if evidence:
        messages.append(evidence)
    return messages


def _details_evidence(view: CardView) -> str:
    """Related knowledge, the tool transcript and each engine's answer, if any."""
    prop = view.decision.proposal if view.decision else None
    if prop is None or (prop.evidence is None and prop.consensus is None):
        return ""

    def draw(lim: Limits) -> str:
        return tidy(render("thread/details_evidence.html", locale=view.locale, tz=view.tz,
                           lim=lim, inc=view.incident, ev=prop.evidence, c=prop.consensus))

    return _fit(draw, _DETAILS_BUDGET)


@dataclass(frozen=True)
class HistoryItem:
    incident: Incident
    decision: Decision | None  # the last decision of that incident


HISTORY_MAX_ITEMS = 15


def render_history(
    target: str,
    items: list[HistoryItem],
    *,
    tz: ZoneInfo,
    locale: str = "en",
) -> str:
    """Recent incidents for one target: id, opened, how long, outcome (newest first)."""
    ordered = sorted(items, key=lambda i: (i.incident.opened_at, i.incident.id), reverse=True)
    rows = []
    for item in ordered[:HISTORY_MAX_ITEMS]:
        inc, dec = item.incident, item.decision
        outcome = str(dec.state) if dec else "none"
        if dec is not None and outcome == "succeeded" and is_dry_run(dec):
            outcome = "dry_run"
        took = None
        if inc.resolved_at is not None:
            took = since(inc.opened_at, inc.resolved_at)
        rows.append({"incident": inc, "duration": took, "outcome": outcome})
    return render_message(
        "thread/history.html",
        tz=tz,
        locale=locale,
        target=target,
        items=rows,
        more=max(0, len(ordered) - HISTORY_MAX_ITEMS),
    )
