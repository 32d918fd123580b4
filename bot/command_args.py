"""The words of a chat command's arguments, shared by /silence, /unsilence (bot.silences.arguments)
and /history (bot.chat.history). Pure: no I/O, no clock.

Tokens are separated by whitespace; double quotes (also the curly quotes phones type) group
words with spaces. Inside quotes `\\"` is a quote and `\\\\` a backslash, any other backslash
is kept as-is (regexes stay readable: `"Disk\\d+"`).

Errors are ArgsError(code, **values); `error_text` renders them from
templates/<locale>/commands/args_errors.html (the only part that reads files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot import texts

INCIDENT_ID = re.compile(r"INC-[0-9A-HJKMNP-TV-Z]{6}", re.IGNORECASE)  # Crockford base32

# Phones replace " with curly quotes; accept both as openers and closers.
OPEN_QUOTES = '"“”'
CLOSE_QUOTES = '"”'

# Every ArgsError code of every command; each has a macro in
# templates/<locale>/commands/args_errors.html (one file, so one list).
CODES = (
    "unclosed_quote",
    "not_a_matcher",
    "label_missing",
    "negative_matcher",
    "double_equals",
    "bad_label_name",
    "bad_regex",
    "regex_not_re2",
    "too_long",
    "too_short",
    "not_a_time",
    "not_a_date",
    "until_what",
    "add_time_of_day",
    "in_the_past",
    "nothing_to_silence",
    "missing_duration",
    "one_incident",
    "not_an_incident_id",
    "order",
    "not_a_duration",
    "ids_and_matchers",
    "all_empty",
    "which_silence",
    "one_silence_id",
    "not_a_silence_id",
    "n_range",
    "one_query",
)
ARGS_ERRORS_TEMPLATE = "commands/args_errors.html"


class ArgsError(texts.TemplatedError):
    """What is wrong, as a code and its values; the words live in the templates.

    `error_text(exc, locale)` is what a user sees (shown in chat before the usage line).
    """

    template = ARGS_ERRORS_TEMPLATE


def error_text(exc: ArgsError, locale: str = texts.DEFAULT_LOCALE) -> str:
    """The error as plain text in `locale` (falling back to en); render_usage escapes it."""
    return exc.text(locale)


@dataclass(frozen=True)
class Token:
    raw: str  # as typed, quotes included
    end: int  # offset just after the token in the text

    @property
    def quoted(self) -> bool:
        return any(q in self.raw for q in OPEN_QUOTES)

    @property
    def text(self) -> str:
        return unquote(self.raw)


def show(token: str, limit: int = 40) -> str:
    """A token quoted for an error message, clipped so one typo cannot flood the chat."""
    return f"'{token if len(token) <= limit else token[: limit - 1] + '…'}'"


def next_token(text: str, pos: int) -> Token | None:
    """The whitespace-separated token at `pos`; quoted parts may contain spaces."""
    n = len(text)
    while pos < n and text[pos].isspace():
        pos += 1
    if pos >= n:
        return None
    start = pos
    while pos < n and not text[pos].isspace():
        if text[pos] in OPEN_QUOTES:
            pos = _closing_quote(text, pos + 1)
            if pos < 0:
                raise ArgsError("unclosed_quote", token=show(text[start:].split()[0]))
        pos += 1
    return Token(text[start:pos], pos)


def _closing_quote(text: str, pos: int) -> int:
    while pos < len(text):
        if text[pos] == "\\" and pos + 1 < len(text):
            pos += 2
            continue
        if text[pos] in CLOSE_QUOTES:
            return pos
        pos += 1
    return -1


def unquote(raw: str) -> str:
    out: list[str] = []
    i, quoted = 0, False
    while i < len(raw):
        ch = raw[i]
        if quoted and ch == "\\" and i + 1 < len(raw) and raw[i + 1] in '"\\”':
            out.append(raw[i + 1])
            i += 2
            continue
        if (not quoted and ch in OPEN_QUOTES) or (quoted and ch in CLOSE_QUOTES):
            quoted = not quoted
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def split_args(text: str) -> list[Token]:
    """Every token of `text`, in order."""
    found, pos = [], 0
    while (token := next_token(text, pos)) is not None:
        found.append(token)
        pos = token.end
    return found


def strip_command(text: str | None) -> str:
    """Accept either the arguments or the whole message ("/silence@opsgate_bot …")."""
    text = (text or "").strip()
    if text.startswith("/"):  # no matcher, duration or id starts with "/"
        parts = text.split(maxsplit=1)
        text = parts[1] if len(parts) > 1 else ""
    return text
