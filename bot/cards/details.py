"""The Details answer: what the card leaves out, each message fitted to Telegram's limit
with bot.cards.fit. Every alert can be reached: the alerts that do not fit under the head
go into a page with buttons that page through all of them (the page message is edited in
place, from any alert index: a page is the alerts from there that fit)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.cards.card import CardView, sorted_alerts, varying_keys
from bot.cards.fit import DoesNotFit, Limits, fit, fits
from bot.labels import shared
from bot.models import Alert
from bot.texts import button, render
from keyboards.callbacks import MAX_ALERT_INDEX, DetailsPageCB

DETAILS_HEAD_ALERTS = 10  # alerts shown under the head; the rest are paged
DETAILS_PAGE_ALERTS = 10  # at most this many alerts a page (bounds a press's work)
_DETAILS_BUDGET = 3800
# A page: its header line and alerts of at most half the budget each, so one always fits.
_PAGE_BUDGET = 4000
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


@dataclass(frozen=True)
class DetailsMessage:
    """One message of the Details answer and its buttons (a page's ◀️ ▶️)."""

    text: str
    keyboard: list[list[dict[str, str]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Shared:
    """What every alert of the incident has in common (shown in the head, not per alert)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    one_url: bool

    @classmethod
    def of(cls, alerts: list[Alert]) -> _Shared:
        return cls(shared([a.labels for a in alerts]), shared([a.annotations for a in alerts]),
                   len({a.generator_url for a in alerts}) <= 1)


def _details_alert(view: CardView, alert: Alert, index: int, common: _Shared) -> str:
    # Only what tells this alert apart: shared labels/annotations are in the head.
    labels = [(k, v) for k, v in sorted(alert.labels.items()) if k not in common.labels]
    annotations = [(k, v) for k, v in sorted(alert.annotations.items())
                   if k not in common.annotations]
    hidden = max(0, len(labels) - _ALERT_MAX_LABELS) + max(
        0, len(annotations) - _ALERT_MAX_ANNOTATIONS
    )

    draw = _drawing(
        view, "thread/details_alert.html", alert=alert, index=index,
        ref=view.incident.opened_at, hidden=hidden, labels=labels[:_ALERT_MAX_LABELS],
        annotations=annotations[:_ALERT_MAX_ANNOTATIONS],
        url="" if common.one_url else alert.generator_url,
    )
    return _fit(draw, _DETAILS_BUDGET // 2)


def render_details(view: CardView) -> list[DetailsMessage]:
    """The Details answer: shared facts and distinct label values, with the first alerts
    in full as far as they fit; then, when alerts are left, a page of them with buttons to
    page through all; then what the proposers saw (related knowledge, tool calls, each
    engine's answer) in one more. Each within Telegram's limit."""
    alerts = sorted_alerts(view.alerts)
    common = _Shared.of(alerts)
    head = _details_head(view, alerts, varying_keys(alerts))
    shown = 0
    for index, alert in enumerate(alerts[:DETAILS_HEAD_ALERTS], start=1):
        joined = head + "\n\n" + _details_alert(view, alert, index, common)
        if not fits(joined, _DETAILS_BUDGET):
            break
        head, shown = joined, index
    messages = [DetailsMessage(head)]
    if shown < len(alerts):
        messages.append(_page(view, alerts, common, shown))
    evidence = _details_evidence(view)
    if evidence:
        messages.append(DetailsMessage(evidence))
    return messages


def details_page(view: CardView, start: int, *, backwards: bool = False) -> DetailsMessage:
    """The page of alerts from index `start` on (0-based, in Details order), or, with
    `backwards`, the page that ends just before `start`. An index past the end shows the
    last page: alerts may have resolved away since the button was made."""
    alerts = sorted_alerts(view.alerts)
    common = _Shared.of(alerts)
    start = max(0, min(start, len(alerts)))
    if backwards or start == len(alerts):
        start = _page_start_before(view, alerts, common, start)
    return _page(view, alerts, common, start)


def _page_start_before(view: CardView, alerts: list[Alert], common: _Shared, end: int) -> int:
    """Where the page that ends just before `end` starts: as many alerts as fit, backwards."""
    first, blocks = end, list[str]()
    while first > 0 and len(blocks) < DETAILS_PAGE_ALERTS:
        block = _details_alert(view, alerts[first - 1], first, common)
        if blocks and not fits(_page_text(view, first - 1, end, len(alerts), [block, *blocks]),
                               _PAGE_BUDGET):
            break
        blocks.insert(0, block)
        first -= 1
    return first


def _page(view: CardView, alerts: list[Alert], common: _Shared, start: int) -> DetailsMessage:
    """As many alerts from `start` as fit in one message (at least one), with buttons."""
    blocks: list[str] = []
    for index in range(start, min(len(alerts), start + DETAILS_PAGE_ALERTS)):
        block = _details_alert(view, alerts[index], index + 1, common)
        if blocks and not fits(_page_text(view, start, index + 1, len(alerts),
                                          [*blocks, block]), _PAGE_BUDGET):
            break
        blocks.append(block)
    end = start + len(blocks)
    text = _page_text(view, start, end, len(alerts), blocks)
    return DetailsMessage(text, _page_keyboard(view, start, end, len(alerts)))


def _page_text(view: CardView, start: int, end: int, total: int, blocks: list[str]) -> str:
    header = render("thread/details_page.html", locale=view.locale, inc=view.incident,
                    first=start + 1, last=end, total=total)
    return "\n\n".join([header, *blocks])


def _page_keyboard(view: CardView, start: int, end: int, total: int
                   ) -> list[list[dict[str, str]]]:
    """◀️ (the page before `start`) and ▶️ (the page from `end`), where there is one."""
    inc = view.incident.id
    row = []
    if start > 0:
        data = DetailsPageCB(inc=inc, at=min(start, MAX_ALERT_INDEX), back=True).pack()
        row.append({"text": button("prev", view.locale), "callback_data": data})
    if end < total:
        data = DetailsPageCB(inc=inc, at=min(end, MAX_ALERT_INDEX)).pack()
        row.append({"text": button("next", view.locale), "callback_data": data})
    return [row] if row else []


def _details_evidence(view: CardView) -> str:
    """Related knowledge, the tool transcript and each engine's answer, if any."""
    prop = view.decision.proposal if view.decision else None
    if prop is None or (prop.evidence is None and prop.consensus is None):
        return ""

    draw = _drawing(view, "thread/details_evidence.html", inc=view.incident, ev=prop.evidence,
                    c=prop.consensus)
    return _fit(draw, _DETAILS_BUDGET)
