"""The Details answer: what the card leaves out, in at most a few messages, each fitted
to Telegram's limit with bot.cards.fit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.cards.card import CardView, sorted_alerts, varying_keys
from bot.cards.fit import DoesNotFit, Limits, fit, fits, tidy
from bot.labels import shared
from bot.models import Alert
from bot.texts import render

# At most 3 messages, each well under the limit.
DETAILS_MAX_MESSAGES = 3
DETAILS_MAX_ALERTS = 10  # alerts shown in full; the head summarizes the rest
_DETAILS_BUDGET = 3800  # leaves room for the "… N more alerts" line
_DETAILS_MAX_LABELS = 30
_DETAILS_MAX_DISTINCT = 12
_DETAILS_VALUES = 5
_ALERT_MAX_LABELS = 20
_ALERT_MAX_ANNOTATIONS = 6


def _fit(draw: Callable[[Limits], str], budget: int) -> str:
    """First tier within `budget`; else within one message (the smallest tier is bounded)."""
    try:
        return fit(draw, budget)
    except DoesNotFit:
        return fit(draw)


def _drawing(view: CardView, template: str, **ctx: Any) -> Callable[[Limits], str]:
    """One Details template, drawn at the limits `fit` tries."""
    return lambda lim: render(template, locale=view.locale, tz=view.tz, lim=lim, **ctx)


def _details_head(view: CardView, alerts: list[Alert], keys: list[str]) -> str:
    labels = shared([a.labels for a in alerts])
    annotations = shared([a.annotations for a in alerts])
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

    draw = _drawing(
        view, "thread/details_head.html", inc=view.incident, total=len(alerts),
        truncated=max(0, view.truncated_alerts),
        common=list(labels.items())[:_DETAILS_MAX_LABELS],
        annotations=list(annotations.items())[:_ALERT_MAX_ANNOTATIONS],
        url=urls.pop() if len(urls) == 1 else "", distinct=distinct, hidden_labels=hidden,
        prop=view.decision.proposal if view.decision else None, effect=view.effect,
    )
    return _fit(draw, _DETAILS_BUDGET)


def _details_alert(view: CardView, alert: Alert, index: int, alerts: list[Alert]) -> str:
    # Only what tells this alert apart: shared labels/annotations are in the head.
    shared_labels = shared([a.labels for a in alerts])
    shared_notes = shared([a.annotations for a in alerts])
    labels = [(k, v) for k, v in sorted(alert.labels.items()) if k not in shared_labels]
    annotations = [(k, v) for k, v in sorted(alert.annotations.items()) if k not in shared_notes]
    show_url = len({a.generator_url for a in alerts}) > 1
    hidden = max(0, len(labels) - _ALERT_MAX_LABELS) + max(
        0, len(annotations) - _ALERT_MAX_ANNOTATIONS
    )

    draw = _drawing(
        view, "thread/details_alert.html", alert=alert, index=index,
        ref=view.incident.opened_at, hidden=hidden, labels=labels[:_ALERT_MAX_LABELS],
        annotations=annotations[:_ALERT_MAX_ANNOTATIONS],
        url=alert.generator_url if show_url else "",
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
        if fits(joined, _DETAILS_BUDGET):
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

    draw = _drawing(view, "thread/details_evidence.html", inc=view.incident, ev=prop.evidence,
                    c=prop.consensus)
    return _fit(draw, _DETAILS_BUDGET)
