"""Every user-facing word comes from Jinja2 templates under templates/<locale>/.

One Environment, autoescape on for every template: label and annotation values
are attacker-controlled strings that end up in Telegram HTML.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)
from jinja2.runtime import Macro

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_LOCALE = "en"
TOAST_MAX = 200  # answerCallbackQuery text limit

# C0/C1 controls (except tab/newline) are dropped: Telegram rejects or mangles them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")


def clean(value: Any) -> str:
    """A str safe to send: no lone surrogates, no control characters."""
    text = value if isinstance(value, str) else str(value)
    # Lone surrogates (possible from JSON "\ud800") cannot be encoded as UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _head(text: str, units: int) -> str:
    """The longest start of `text` within `units` UTF-16 code units (whole characters)."""
    used = 0
    for index, char in enumerate(text):
        used += _units(char)
        if used > units:
            return text[:index]
    return text


def clip(value: Any, limit: int) -> str:
    """Truncate the RAW value (before autoescape) so no tag or entity is ever cut.

    `limit` is in UTF-16 code units, Telegram's measure: the clipped value shows as at
    most `limit` units after entity parsing, whatever escaping adds to the raw HTML."""
    text = clean(value).strip()
    if limit <= 0:
        return ""
    if utf16_len(text) <= limit:
        return text
    return _head(text, limit - 1).rstrip() + "…"


def line(value: Any, limit: int) -> str:
    """One-line form of a value (label values may hold newlines), clipped."""
    return clip(_SPACES.sub(" ", clean(value)), limit)


def clip_tail(value: Any, limit: int) -> str:
    """Keep the end (command output: the error is usually last); `limit` as in clip."""
    text = clean(value).strip()
    if limit <= 0:
        return ""
    if utf16_len(text) <= limit:
        return text
    return "…" + _head(text[::-1], limit - 1)[::-1].lstrip()


def _aware(value: datetime) -> datetime:
    # Stored times are UTC; a naive one is treated as UTC rather than local time.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dt(value: datetime, tz: ZoneInfo) -> str:
    """'2026-11-27 13:07 UTC' in the configured zone."""
    return _aware(value).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def hhmm(value: datetime, tz: ZoneInfo) -> str:
    """'13:07 UTC' in the configured zone."""
    return _aware(value).astimezone(tz).strftime("%H:%M %Z")


def at(value: datetime, tz: ZoneInfo, ref: datetime | None = None) -> str:
    """HH:MM when on the same local day as `ref`, else the full date.

    `ref` is stored state (e.g. when the incident opened), never the clock,
    so the output stays deterministic.
    """
    if ref is not None:
        if _aware(value).astimezone(tz).date() == _aware(ref).astimezone(tz).date():
            return hhmm(value, tz)
    return dt(value, tz)


def duration(seconds: float | timedelta) -> str:
    """45s, 12m, 1h 5m, 2d 3h: two units at most, good enough for humans."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    days, hrs = divmod(hours, 24)
    return f"{days}d {hrs}h" if hrs else f"{days}d"


def since(start: datetime, end: datetime) -> str:
    """Duration between two stored times."""
    return duration(_aware(end) - _aware(start))


def _build_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        # The templates ship with the program: no stat of the file on every render.
        auto_reload=False,
    )
    env.filters.update(
        clip=clip,
        line=line,
        clip_tail=clip_tail,
        dt=dt,
        hhmm=hhmm,
        at=at,
        duration=duration,
        since=since,
    )
    return env


ENV = _build_env()


@cache
def _locales() -> dict[str, str]:
    # Folders starting with "_" hold locale-free parts (icons), not a language.
    return {p.name.lower(): p.name for p in TEMPLATES_DIR.iterdir()
            if p.is_dir() and not p.name.startswith("_")}


def resolve_locale(locale: str | None) -> str:
    """'zh_tw', 'zh-TW', 'ZH-tw' -> 'zh-TW'; unknown -> 'en'."""
    key = (locale or DEFAULT_LOCALE).replace("_", "-").lower()
    return _locales().get(key, DEFAULT_LOCALE)


def _template(name: str, locale: str):
    loc = resolve_locale(locale)
    try:
        return ENV.get_template(f"{loc}/{name}")
    except TemplateNotFound:
        if loc == DEFAULT_LOCALE:
            raise
        return ENV.get_template(f"{DEFAULT_LOCALE}/{name}")


def render(name: str, /, locale: str = DEFAULT_LOCALE, **ctx: Any) -> str:
    """Render templates/{locale}/{name} (falling back to en) as Telegram HTML."""
    return _template(name, locale).render(**ctx).strip()


def _macro(file: str, key: str, locale: str, ctx: dict[str, Any]) -> str:
    for loc in dict.fromkeys((resolve_locale(locale), DEFAULT_LOCALE)):
        try:
            module = _template(file, loc).module
        except TemplateNotFound:
            continue
        macro = getattr(module, key, None)
        if isinstance(macro, Macro):
            # Pass only what the macro declares: callers may give extra context.
            args = {k: v for k, v in ctx.items() if k in macro.arguments}
            return str(macro(**args)).strip()
    raise KeyError(f"no text {key!r} in {file}")


def warm(locale: str) -> None:
    """Compile now what a press renders before its answer: the toasts and the thread notes
    its transaction queues. A template compiles on first use, in milliseconds to tens of
    them, and the first press after a start waited for it (holding the write turn, for a
    note)."""
    for loc in dict.fromkeys((resolve_locale(locale), DEFAULT_LOCALE)):
        notes = sorted(p.name for p in (TEMPLATES_DIR / loc / "thread").glob("*.html"))
        for name in ["toasts.html", *(f"thread/{n}" for n in notes)]:
            try:
                template = ENV.get_template(f"{loc}/{name}")
            except TemplateNotFound:
                continue
            if name == "toasts.html":
                template.module  # noqa: B018 - the macros, built once and kept


def plain(html_text: str) -> str:
    """Telegram HTML -> the plain text a user would see (tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", html_text))


def macro_text(file: str, key: str, locale: str = DEFAULT_LOCALE, **ctx: Any) -> str:
    """One macro of a template file as plain one-line text (values are unescaped again:
    the caller's own template escapes them once more for Telegram HTML)."""
    return " ".join(html.unescape(_macro(file, key, locale, ctx)).split())


class TemplatedError(ValueError):
    """An error whose words live in a template file, one macro per code, so users read
    it in their locale; `str()` gives English for logs."""

    template: ClassVar[str]

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def text(self, locale: str = DEFAULT_LOCALE) -> str:
        return macro_text(self.template, self.code, locale, **self.params)

    @property
    def message(self) -> str:
        return self.text(DEFAULT_LOCALE)

    def __str__(self) -> str:
        try:
            return self.message
        except Exception:  # a debugging aid must not raise while formatting a traceback
            return f"{self.code} {self.params!r}"


def toast(key: str, /, locale: str = DEFAULT_LOCALE, **ctx: Any) -> str:
    """Plain-text callback answer (≤ 200 chars). Toasts are not parsed, so unescape."""
    text = macro_text("toasts.html", key, locale, **ctx)
    return text if len(text) <= TOAST_MAX else text[: TOAST_MAX - 1] + "…"


@cache  # a label is the same every time (a card's keyboard asks for several per render)
def button(key: str, /, locale: str = DEFAULT_LOCALE) -> str:
    """Inline button label, e.g. '✅ Approve'. Plain text: buttons are not parsed."""
    return html.unescape(_macro("buttons.html", "label", locale, {"key": key}))


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
