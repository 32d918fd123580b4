"""The one duration grammar: '30s', '15m', '1h30m', '2d', '1w', '200ms'.

Settings (environment variables), rates ('20/1m') and /silence all read durations here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|[wdhms])", re.IGNORECASE)
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|[wdhms]))+", re.IGNORECASE)
_BARE = re.compile(r"\d+(?:\.\d+)?")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(token: str, *, millis: bool = True) -> float | None:
    """Seconds of one duration token with units ('1h30m'); None if it is not one.
    Without `millis`, 'ms' is not a unit (a silence lasts minutes at least)."""
    if not _WHOLE.fullmatch(token) or (not millis and "ms" in token.lower()):
        return None
    return sum(float(n) * UNIT_SECONDS[u.lower()] for n, u in _PART.findall(token))


def parse_duration(value: Any) -> timedelta:
    """A setting's duration: units as above (spaces allowed), or a bare number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    text = re.sub(r"\s+", "", str(value))
    seconds = float(text) if _BARE.fullmatch(text) else duration_seconds(text)
    if seconds is None:
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 15m, 1h)")
    return timedelta(seconds=seconds)


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(.+)$")


def parse_rate(text: str) -> tuple[int, float]:
    """'20/60s', '20/1m', '30/1s' -> (count, period in seconds)."""
    match = _RATE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"not a rate: {text!r} (use e.g. 20/1m)")
    per = parse_duration(match.group(2)).total_seconds()
    if per <= 0:
        raise ValueError(f"not a rate: {text!r} (the period must be positive)")
    return int(match.group(1)), per
