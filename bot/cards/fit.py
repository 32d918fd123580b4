"""Fitting a text into one Telegram message, measured as Telegram measures it.

One measure everywhere: UTF-16 code units of the text left after entity parsing (tags
dropped, character references decoded, trailing spaces trimmed), the count TDLib and
the Bot API server apply to the 4096 limit. `measure` never counts less than Telegram
does: where unsure it counts more.

One engine: `first_fit` takes renderings in order and keeps the first that fits. Templates
clip every value to a tier of sizes (bot.texts.clip, in the same units), so a tier's size is
bounded: the card and its notes try the tiers below (`fit`); chat answers try their own
tiers, then fewer entries (bot.cards.command_text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.texts import utf16_len

MAX_TEXT = 4096  # Telegram: UTF-16 code units after entity parsing
MAX_RAW = 30 * 1024  # Telegram refuses raw input over 32 KiB; keep a margin

_TAG = re.compile(r"<[^>]*>")
# The references TDLib decodes; anything else (e.g. &nbsp;) stays literal text there too.
_REF = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
# TDLib turns these into spaces (or drops "\r") and trims them at the end.
_TRIM = " \t\n\r\x0b\x0c"


class DoesNotFit(ValueError):
    """No tier of a rendering fits: a template without clipped values (a bug)."""


def _decode(match: re.Match[str]) -> str:
    decimal, hexa, name = match.groups()
    if name:
        return _NAMED[name]
    value = int(decimal) if decimal else int(hexa, 16)
    if 0 < value < 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
        return chr(value)
    return match.group(0)  # counted as written: never less than Telegram


def visible_text(html: str) -> str:
    """The text a reader sees, before trimming: tags dropped, references decoded."""
    return _REF.sub(_decode, _TAG.sub("", html))


def measure(html: str) -> int:
    """Telegram's length of a message in HTML parse mode (UTF-16 code units)."""
    # Leading spaces are trimmed only before the first tag: TDLib keeps those inside
    # an entity, so trimming them here could count less than Telegram.
    first_tag = html.find("<")
    head, rest = (html, "") if first_tag < 0 else (html[:first_tag], html[first_tag:])
    text = visible_text(head).lstrip(_TRIM) + visible_text(rest)
    return utf16_len(text.rstrip(_TRIM))


def fits(html: str, limit: int = MAX_TEXT) -> bool:
    return measure(html) <= limit and len(html.encode("utf-8", "replace")) <= MAX_RAW


def first_fit(drafts: Iterable[str], budget: int = MAX_TEXT) -> str | None:
    """The first of `drafts` that fits within `budget` (tidied), or None. Drafts are taken
    one at a time, so a generator draws the later ones only when the earlier do not fit."""
    for draft in drafts:
        text = tidy(draft)
        if fits(text, budget):
            return text
    return None


def tidy(text: str) -> str:
    """Normalize template whitespace: no trailing spaces, at most one blank line."""
    text = "\n".join(ln.rstrip() for ln in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(frozen=True)
class Limits:
    """Clip sizes (UTF-16 code units of the raw value) used by templates."""

    summary: int = 300
    description: int = 1000
    label: int = 80
    alerts: int = 8
    effect: int = 600
    reasoning: int = 600
    name: int = 64
    reason: int = 300
    link: int = 300


# Tried in order until the text fits; the last one fits whatever the input
# (every value is clipped, so its size is bounded by construction).
TIERS = (
    Limits(),
    Limits(summary=200, description=400, label=60, alerts=5, effect=300, reasoning=300,
           name=48, reason=200, link=150),
    Limits(summary=100, description=0, label=40, alerts=3, effect=160, reasoning=120,
           name=32, reason=100, link=80),
)


def fit(draw: Callable[[Limits], str], budget: int = MAX_TEXT) -> str:
    """The first tier's rendering (tidied) within `budget`; DoesNotFit if none is."""
    text = first_fit((draw(lim) for lim in TIERS), budget)
    if text is None:
        raise DoesNotFit(f"no tier fits within {budget} UTF-16 units")
    return text


def checked(text: str, what: str) -> str:
    """`text` tidied, or DoesNotFit naming `what` (a template that clips nothing)."""
    text = tidy(text)
    if not fits(text):
        raise DoesNotFit(f"{what} renders over Telegram's limits")
    return text
