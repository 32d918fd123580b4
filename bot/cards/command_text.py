"""The text of chat answers (command replies, silence and chat notes), fitted into one
Telegram message by bot.cards.fit's engine.

Every text comes from templates/<locale>/commands/ (autoescaped), every value is clipped to
a tier of sizes, and lists are capped with "… N more": the tiers are tried in order until
the message fits, then entries are dropped one by one, so each answer fits one Telegram
message whatever the input. Pure: no clock, no I/O besides reading templates.

Keyboards are plain `list[list[dict]]`, as in keyboards/incident.py.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from bot.cards.fit import DoesNotFit, first_fit
from bot.texts import render

Keyboard = list[list[dict]]


@dataclass(frozen=True)
class Lim:
    """Clip sizes (characters of the raw value) used by templates/<locale>/commands/."""

    items: int  # list entries shown (the rest: "… N more")
    name: int  # person names, ids
    text: int  # reasons, titles, errors
    label: int  # alert names, targets, queries
    matcher: int  # one matcher, e.g. service="api"
    matchers: int  # matchers shown per silence (the rest: "+N")


# Tried in order until the message fits; after the last, entries are dropped one by
# one: with no entries left, every value is clipped, so the header alone always fits.
TIERS = (
    Lim(items=25, name=64, text=300, label=80, matcher=120, matchers=8),
    Lim(items=15, name=48, text=120, label=60, matcher=64, matchers=4),
    Lim(items=8, name=32, text=60, label=40, matcher=40, matchers=3),
)


def fit(draw: Callable[[Lim, int], str], total: int = 0, caps: Sequence[int] = ()) -> str:
    """First rendering that fits Telegram's limits. `draw(lim, n)` shows `n` of `total`
    entries; `caps` overrides the tiers' entry counts (same length as TIERS)."""
    shown = [min(total, caps[i] if caps else lim.items) for i, lim in enumerate(TIERS)]
    last = TIERS[-1]
    text = first_fit(chain((draw(lim, n) for lim, n in zip(TIERS, shown, strict=True)),
                           (draw(last, n) for n in range(shown[-1] - 1, -1, -1))))
    if text is None:  # a template bug
        raise DoesNotFit("command answer does not fit even without entries")
    return text


def fit_one(name: str, locale: str, tz: ZoneInfo, **ctx: Any) -> str:
    """A one-entry answer: templates/<locale>/commands/<name>.html, fitted."""
    return fit(lambda lim, _n: view(name, locale, tz, lim, **ctx))


def view(name: str, locale: str, tz: ZoneInfo, lim: Lim, **ctx: Any) -> str:
    return render(f"commands/{name}.html", locale=locale, tz=tz, lim=lim, **ctx)


def plain(html_text: str) -> str:
    """Template output -> plain text (button labels and menu descriptions are not parsed)."""
    return " ".join(html.unescape(html_text).split())
