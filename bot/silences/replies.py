"""What the bot says about silences: the /silence, /silences and /unsilence answers, the
Expire buttons, and the note when a silence ends. Pure: no clock (an explicit `now`), no I/O;
fitted under Telegram's limits by bot.cards.command_text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.cards.command_text import Keyboard, fit, fit_one, plain, view
from bot.models import Matcher, Silence
from bot.texts import render
from keyboards.callbacks import SilenceAct, SilenceCB

AM_STATUSES = ("synced", "local", "shared", "off")
MAX_EXPIRE_BUTTONS = 20


class RemoteLike(Protocol):
    """What the silence list needs of an Alertmanager silence (bot.silences.alertmanager)."""

    id: str
    matchers: list[Matcher]
    created_by: str
    comment: str
    ends_at: datetime


def matcher_text(matcher: Matcher) -> str:
    """Alertmanager notation: name="value" or name=~"regex" (value quoted, escaped)."""
    op = "=~" if matcher.is_regex else "="
    return f"{matcher.name}{op}{json.dumps(matcher.value, ensure_ascii=False)}"


def _matchers(matchers: Iterable[Matcher]) -> list[str]:
    return [matcher_text(m) for m in matchers]


def render_silence_created(
    silence: Silence,
    *,
    open_matches: int,
    am_status: str,
    tz: ZoneInfo,
    locale: str = "en",
    now: datetime,
) -> str:
    """/silence answer. am_status: "synced" (also in Alertmanager), "local" (Alertmanager
    unreachable: local only, said clearly), "shared" (not sent: its alerts go to other chats
    too), "off" (no Alertmanager configured: not mentioned)."""
    if am_status not in AM_STATUSES:
        raise ValueError(f"am_status must be one of {AM_STATUSES}, not {am_status!r}")
    return fit_one(
        "silence_created", locale, tz, silence=silence, matchers=_matchers(silence.matchers),
        open_matches=max(0, open_matches), am_status=am_status, now=now,
    )


def _row(silence: Silence | RemoteLike, reason: str, remote: bool) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": _matchers(silence.matchers),
        "ends_at": silence.ends_at,
        "by": silence.created_by,
        "reason": reason,
        "remote": remote,
    }


def render_silence_list(
    local: list[Silence],
    remote: Sequence[RemoteLike],
    *,
    can_expire: bool,
    tz: ZoneInfo,
    locale: str = "en",
    now: datetime,
) -> tuple[str, Keyboard]:
    """/silences: active silences, soonest end first, local ones before those that exist
    only in Alertmanager. `remote` should hold only Alertmanager silences without a local
    counterpart (one whose id equals a local id is skipped). Keyboard: one expire button
    per local silence (first 20) when `can_expire`."""
    local_sorted = sorted(local, key=lambda s: (s.ends_at, s.id))
    local_ids = {s.id for s in local_sorted}
    remote_sorted = sorted(
        (r for r in remote if r.id not in local_ids), key=lambda r: (r.ends_at, r.id)
    )
    rows = [_row(s, s.reason, False) for s in local_sorted] + [
        _row(r, r.comment, True) for r in remote_sorted
    ]

    text = fit(
        lambda lim, n: view(
            "silence_list",
            locale,
            tz,
            lim,
            rows=rows[:n],
            more=len(rows) - n,
            total=len(rows),
            now=now,
        ),
        total=len(rows),
    )
    keyboard: Keyboard = []
    if can_expire:
        for silence in local_sorted[:MAX_EXPIRE_BUTTONS]:
            label = plain(render("commands/expire_button.html", locale=locale, sid=silence.id))
            data = SilenceCB(act=SilenceAct.EXPIRE, sid=silence.id).pack()
            keyboard.append([{"text": label, "callback_data": data}])
    return text, keyboard


def render_silence_expired(
    silence: Silence, *, by: str | None, tz: ZoneInfo, locale: str = "en"
) -> str:
    """A silence ended: expired by a person (`by`), or by itself (by None: "ended at")."""
    return fit_one(
        "silence_expired", locale, tz, silence=silence, matchers=_matchers(silence.matchers),
        by=by, ended=silence.expired_at or silence.ends_at,
    )


def render_unknown_silence(sid: str, *, tz: ZoneInfo, locale: str = "en") -> str:
    """/unsilence (or an expire button) named a silence that is unknown or already over."""
    return fit_one("unknown_silence", locale, tz, sid=sid)
