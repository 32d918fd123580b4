"""What Telegram accepts as a message text: TDLib's parser, then TDLib's clean-up, then
the length limit counted in UTF-16 code units.

``PARSER`` says which parser judges: ``"tdlib"`` (PyPI ``tdjson``, the parser the Bot
API server runs) or ``"fallback"`` (``sandbox.telegram_html``, where tdjson cannot be
imported, or with OPSGATE_HTML_JUDGE=fallback; tests/sandbox/test_html_differential.py
keeps the two equal).
"""

from __future__ import annotations

import os
import re

from sandbox import tdlib
from sandbox.telegram_html import HtmlParseError, ParsedText, parse_html, utf16_len

MAX_TEXT = 4096  # message text, UTF-16 code units after entity parsing
MAX_CAPTION = 1024
MAX_RAW_BYTES = 32 * 1024

# OPSGATE_HTML_JUDGE=fallback runs everything against the fallback parser instead.
PARSER = "tdlib" if tdlib.AVAILABLE and os.environ.get("OPSGATE_HTML_JUDGE") != "fallback" else (
    "fallback"
)

# What TDLib's fix_formatted_text drops from every text: carriage returns, the
# Unicode line/paragraph separators and bidi embedding controls, three combining marks.
_DROPPED = frozenset("\r\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u030a\u0333\u033f")
_SPACE_LIKE = frozenset(chr(c) for c in range(33) if c not in (10, 13))  # become " "
_CHANGED = re.compile("[" + re.escape("".join(sorted(_DROPPED | _SPACE_LIKE - {" "}))) + "]")


def parse(html: str) -> ParsedText:
    """Parse Telegram HTML with the judging parser; HtmlParseError as the Bot API says it."""
    if PARSER == "fallback":
        return parse_html(html)
    try:
        text, entities = tdlib.parse_html(html)
    except tdlib.TdlibError as exc:
        message = exc.message[:1].lower() + exc.message[1:]
        raise HtmlParseError(f"Bad Request: {message}") from None
    return ParsedText(text, entities)


def fix_text(parsed: ParsedText) -> ParsedText:
    """TDLib's clean-up before a text is sent: control characters become spaces, a few
    characters are dropped, entities holding only spaces go, and the text is trimmed
    (leading spaces only up to the first entity). Offsets stay in UTF-16 units."""
    if _CHANGED.search(parsed.text) is None:  # the usual case: offsets stay as they are
        text, new_at = parsed.text, None
    else:
        text, new_at = _clean(parsed.text)
    units = text.encode("utf-16-le")
    entities = []
    for entity in parsed.entities:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        if new_at is not None:
            start, end = new_at[start], new_at[end]
        if units[2 * start : 2 * end].decode("utf-16-le").strip(" \n"):
            entities.append({**entity, "offset": start, "length": end - start})
    text = text.rstrip(" \n")
    right = utf16_len(text)
    for entity in entities:
        entity["length"] = min(entity["offset"] + entity["length"], right) - entity["offset"]
    first = min((e["offset"] for e in entities), default=right)
    left = 0
    while left < first and text[left] in " \n":
        left += 1
    for entity in entities:
        entity["offset"] -= left
    return ParsedText(text[left:], entities)


def _clean(text: str) -> tuple[str, dict[int, int]]:
    """Control characters to spaces, dropped characters out; old -> new UTF-16 offsets."""
    kept: list[str] = []
    new_at: dict[int, int] = {}
    old = new = 0
    for char in text:
        new_at[old] = new
        old += utf16_len(char)
        if char in _DROPPED:
            continue
        out = " " if char in _SPACE_LIKE else char
        kept.append(out)
        new += utf16_len(out)
    new_at[old] = new
    return "".join(kept), new_at


def _check(parsed: ParsedText, limit: int, *, allow_empty: bool = False) -> ParsedText:
    fixed = fix_text(parsed)
    if not fixed.text and not allow_empty:
        raise HtmlParseError("Bad Request: message text is empty")
    if utf16_len(fixed.text) > limit:
        raise HtmlParseError("Bad Request: message is too long")
    return fixed


def _raw_ok(raw: str) -> None:
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate, e.g. from JSON "\ud800"
        raise HtmlParseError("Bad Request: text must be encoded in UTF-8") from None
    if size > MAX_RAW_BYTES:
        raise HtmlParseError("Bad Request: message is too long")


def check_message_text(html: str) -> ParsedText:
    """A sendMessage/editMessageText text in HTML parse mode, as Telegram judges it."""
    _raw_ok(html)
    return _check(parse(html), MAX_TEXT)


def check_plain_text(text: str) -> ParsedText:
    """The same limits for a text sent without parse_mode."""
    _raw_ok(text)
    return _check(ParsedText(text, []), MAX_TEXT)


def check_caption(html: str | None, *, parse_mode: str = "html") -> ParsedText:
    """A media caption (0-1024 UTF-16 units after parsing; empty is allowed)."""
    raw = html or ""
    _raw_ok(raw)
    parsed = parse(raw) if parse_mode == "html" else ParsedText(raw, [])
    return _check(parsed, MAX_CAPTION, allow_empty=True)
