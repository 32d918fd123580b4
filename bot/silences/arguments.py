"""Arguments of the chat commands /silence and /unsilence. Parsing is pure: no I/O, no clock.

Grammar of /silence (matchers first, then one duration, then free text):

    /silence service=api namespace=prod 2h deploy in progress
    /silence alertname=~"Disk.*" until 09:00
    /silence INC-7K3F9Q 1h30m

Matchers follow Alertmanager: `name=value` is an exact match, `name=~regex` must match the
whole value (anchored), and a missing label counts as the empty string. Quoting and the
error codes are bot.command_args's, shared with /history.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.command_args import (
    CLOSE_QUOTES,
    INCIDENT_ID,
    OPEN_QUOTES,
    ArgsError,
    Token,
    next_token,
    show,
    split_args,
    strip_command,
    unquote,
)
from bot.durations import duration_seconds
from bot.models import Matcher
from bot.silences.matching import compiled, matcher_matches

SILENCE_USAGE = (
    "/silence label=value|label=~regex|INC-id … 30m|2h|1d|1h30m|until 09:00 [reason]"
)
UNSILENCE_USAGE = "/unsilence S-1A2B3C"

MIN_SILENCE = timedelta(minutes=1)
MAX_SILENCE = timedelta(days=30)
MAX_REASON = 500

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# "S-" + 6 characters; approvals.py generates hex, the wider set survives a change there.
SILENCE_ID = re.compile(r"S-[0-9A-Z]{6}", re.IGNORECASE)

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_DAY_AND_CLOCK = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{1,2}:\d{2})", re.IGNORECASE)
# Operators are read from the raw token so a quoted value like "~x" stays a literal.
_OPERATOR = re.compile(r"([^=!~\s]*)(==|=~|!=|!~|=)")

@dataclass
class SilenceArgs:
    matchers: list[Matcher]
    incident_id: str | None  # set instead of matchers: "that incident's group labels"
    ends_at: datetime  # aware, UTC
    reason: str


def _not_a_matcher(raw: str) -> ArgsError:
    return ArgsError("not_a_matcher", token=show(raw))


# ---------------------------------------------------------------- matchers


def _parse_matcher(token: Token) -> Matcher:
    m = _OPERATOR.match(token.raw)
    if m is None:
        raise _not_a_matcher(token.raw)
    name, op = m.group(1), m.group(2)
    if not name:
        raise ArgsError("label_missing", token=show(token.raw))
    if op in ("!=", "!~"):
        raise ArgsError("negative_matcher", op=op, token=show(token.raw))
    if op == "==":
        raise ArgsError("double_equals", token=show(token.raw))
    if not LABEL_NAME.fullmatch(name):
        raise ArgsError("bad_label_name", name=show(name))
    value = unquote(token.raw[m.end():])
    if op == "=~":
        _check_regex(value)
    return Matcher(name=name, value=value, is_regex=op == "=~")


def _check_regex(pattern: str) -> None:
    """Compile like bot.silences.matching will, and refuse what Alertmanager's RE2 would reject."""
    try:
        with warnings.catch_warnings():
            # e.g. "[[:alpha:]]" compiles in Python with a FutureWarning but means something else
            warnings.simplefilter("error")
            re.compile(pattern)
    except (re.error, FutureWarning) as exc:
        raise ArgsError("bad_regex", pattern=show(pattern), error=str(exc)) from None
    if _uses_non_re2(pattern) or compiled(pattern) is None:
        raise ArgsError("regex_not_re2", pattern=show(pattern))


def _uses_non_re2(pattern: str) -> bool:
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if not in_class and pattern[i + 1 : i + 2].isdigit() and pattern[i + 1] != "0":
                return True  # \1 .. \9: backreference
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # "[]...]" and "[^]...]": that ] is literal
                i += 1
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!", "(?>", "(?(", "(?P="), i):
            return True
        i += 1
    return False


def _matches_empty(matcher: Matcher) -> bool:
    return matcher_matches(matcher, {})


# ---------------------------------------------------------------- duration


def _is_duration(token: str) -> bool:
    return duration_seconds(token, millis=False) is not None


def _relative(token: str) -> timedelta | None:
    seconds = duration_seconds(token, millis=False)
    if seconds is None:
        return None
    if seconds > MAX_SILENCE.total_seconds():  # before timedelta(): huge numbers overflow it
        raise ArgsError("too_long", days=MAX_SILENCE.days)
    return timedelta(seconds=seconds)


def _clock(token: str) -> time:
    m = _CLOCK.fullmatch(token)
    if m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ArgsError("not_a_time", token=show(token))
    return time(int(m.group(1)), int(m.group(2)))


def _day(token: str) -> date:
    m = _DAY.fullmatch(token)
    try:
        if m is None:
            raise ValueError
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise ArgsError("not_a_date", token=show(token)) from None


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    # fold=0: a wall time in a DST gap lands after the jump (02:30 -> 03:30 CEST), and an
    # ambiguous one (autumn) means its first occurrence — the shorter silence.
    return datetime.combine(day, at, tzinfo=tz)


def _until(text: str, pos: int, now: datetime, tz: ZoneInfo) -> tuple[datetime, int]:
    """`until HH:MM` (next occurrence after now) or `until YYYY-MM-DD HH:MM`, local time."""
    first = next_token(text, pos)
    if first is None:
        raise ArgsError("until_what")
    if m := _DAY_AND_CLOCK.fullmatch(first.raw):
        return _local(_day(m.group(1)), _clock(m.group(2)), tz), first.end
    if _DAY.fullmatch(first.raw):
        second = next_token(text, first.end)
        if second is None or not _CLOCK.fullmatch(second.raw):
            raise ArgsError("add_time_of_day", day=first.raw)
        return _local(_day(first.raw), _clock(second.raw), tz), second.end
    at = _clock(first.raw)
    today = now.astimezone(tz).date()
    ends = _local(today, at, tz)
    if ends <= now:
        # The next calendar day at that wall time: 23 or 25 hours later across DST.
        ends = _local(today + timedelta(days=1), at, tz)
    return ends, first.end


def _read_duration(
    text: str, token: Token, now: datetime, tz: ZoneInfo
) -> tuple[datetime, int] | None:
    """(ends_at, end offset) if `token` starts a duration, else None."""
    if token.raw.lower() == "until":
        ends, end = _until(text, token.end, now, tz)
        if ends <= now:
            local = ends.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            raise ArgsError("in_the_past", local=local, tz=tz.key)
        return ends, end
    delta = _relative(token.raw)
    if delta is None:
        return None
    end = token.end
    # "1h 30m" reads as 1h30m: swallow further pure-duration tokens.
    while True:
        try:
            more = next_token(text, end)
        except ArgsError:  # an unbalanced quote in the reason is the reason's business
            break
        extra = _relative(more.raw) if more else None
        if more is None or extra is None:
            break
        delta, end = delta + extra, more.end
    return now + delta, end


def _check_bounds(ends_at: datetime, now: datetime) -> None:
    if ends_at - now < MIN_SILENCE:
        raise ArgsError("too_short", minutes=int(MIN_SILENCE.total_seconds() // 60))
    if ends_at - now > MAX_SILENCE:
        raise ArgsError("too_long", days=MAX_SILENCE.days)


def _reason(rest: str) -> str:
    """The rest of the text as typed; one fully quoted string loses its quotes."""
    rest = rest.strip()
    try:
        tokens = split_args(rest)
    except ArgsError:  # unbalanced quotes are fine in free text
        return rest
    if len(tokens) == 1 and rest[0] in OPEN_QUOTES and rest[-1] in CLOSE_QUOTES:
        return tokens[0].text
    return rest


# ---------------------------------------------------------------- commands


def parse_silence_args(text: str | None, now: datetime, tz: ZoneInfo) -> SilenceArgs:
    """Parse `/silence <matchers> <duration> [reason]`; raise ArgsError if it does not parse."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    text = strip_command(text)
    matchers: list[Matcher] = []
    incident_id: str | None = None
    pos = 0
    while True:
        token = next_token(text, pos)
        if token is None:
            if not matchers and incident_id is None:
                raise ArgsError("nothing_to_silence")
            raise ArgsError("missing_duration")
        if INCIDENT_ID.fullmatch(token.raw):
            if incident_id is not None:
                raise ArgsError("one_incident")
            incident_id = token.raw.upper()
        elif token.raw[:4].upper() == "INC-" and "=" not in token.raw:
            raise ArgsError("not_an_incident_id", token=show(token.raw))
        elif "=" in token.raw or "~" in token.raw:
            matchers.append(_parse_matcher(token))
        else:
            if not matchers and incident_id is None:
                if token.raw.lower() == "until" or _is_duration(token.raw):
                    raise ArgsError("order")
                raise _not_a_matcher(token.raw)
            found = _read_duration(text, token, now, tz)
            if found is None:
                raise ArgsError("not_a_duration", token=show(token.raw))
            ends_at, pos = found
            break
        pos = token.end

    if incident_id is not None and matchers:
        raise ArgsError("ids_and_matchers")
    if matchers and all(_matches_empty(m) for m in matchers):
        # Alertmanager refuses these too: they would silence nearly everything.
        raise ArgsError("all_empty")
    _check_bounds(ends_at, now)
    reason = _reason(text[pos:])
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return SilenceArgs(matchers, incident_id, ends_at.astimezone(UTC), reason)


def parse_unsilence_args(text: str | None) -> str:
    """`/unsilence S-1A2B3C` -> "S-1A2B3C" (case-insensitive)."""
    tokens = split_args(strip_command(text))
    if not tokens:
        raise ArgsError("which_silence")
    if len(tokens) > 1:
        raise ArgsError("one_silence_id")
    if not SILENCE_ID.fullmatch(tokens[0].raw):
        raise ArgsError("not_a_silence_id", token=show(tokens[0].raw))
    return tokens[0].raw.upper()

