"""Answers to the chat commands: pure functions of their arguments -> Telegram HTML.

Like bot.cards.card, nothing here reads the clock or does I/O: "time left" is computed from an
explicit `now`, times are shown in the given zone, and identical input renders identical
bytes. Every text comes from templates/<locale>/commands/ (autoescaped), every value is
clipped, and lists are capped with "… N more", so each answer fits one Telegram message
whatever the input (see `_fit`).

Keyboards are plain `list[list[dict]]`, as in keyboards/incident.py.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot.cards.card import fits, tidy
from bot.cards.links import button_url_ok
from bot.models import Incident, Matcher, Silence
from bot.silences.arguments import HISTORY_USAGE, SILENCE_USAGE, UNSILENCE_USAGE
from bot.texts import button, render
from keyboards.callbacks import (
    MAX_CALLBACK_BYTES,
    HistoryPageCB,
    SilenceAct,
    SilenceCB,
)

Keyboard = list[list[dict]]

# The command set, in the order /help and the command menu show it.
COMMANDS = ("incidents", "history", "silence", "silences", "unsilence", "whoami", "help")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")

AM_STATUSES = ("synced", "local", "off")
MAX_EXPIRE_BUTTONS = 20
# HistoryPageCB packs as "h1:<query>:<page>": 40 bytes of query leave room for the
# prefix, two separators and any realistic page number within 64 bytes.
HISTORY_QUERY_MAX = 40
_MAX_LINK = 512  # an href longer than this is not one of ours: show the id as text


class RemoteLike(Protocol):
    """What the silence list needs of an Alertmanager silence (bot.silences.alertmanager)."""

    id: str
    matchers: list[Matcher]
    created_by: str
    comment: str
    ends_at: datetime


@dataclass(frozen=True)
class HistoryRow:
    """One line of a /history page."""

    incident: Incident
    state: str | None  # DecisionState value of its last decision; None: no decision
    decided_by: str | None  # who approved / rejected, if anyone
    dry_run: bool = False  # the fix "succeeded" in dry-run mode


@dataclass(frozen=True)
class OpenIncidentRow:
    """One line of /incidents."""

    incident: Incident
    state: str | None  # DecisionState value of the current decision; None: no decision
    link: str | None  # t.me link to the card (see message_link), or None


# --------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class _Lim:
    """Clip sizes (characters of the raw value) used by templates/<locale>/commands/."""

    items: int  # list entries shown (the rest: "… N more")
    name: int  # person names, ids
    text: int  # reasons, titles, errors
    label: int  # alert names, targets, queries
    matcher: int  # one matcher, e.g. service="api"
    matchers: int  # matchers shown per silence (the rest: "+N")


# Tried in order until the message fits; after the last, entries are dropped one by
# one: with no entries left, every value is clipped, so the header alone always fits.
_TIERS = (
    _Lim(items=25, name=64, text=300, label=80, matcher=120, matchers=8),
    _Lim(items=15, name=48, text=120, label=60, matcher=64, matchers=4),
    _Lim(items=8, name=32, text=60, label=40, matcher=40, matchers=3),
)


def _fit(draw: Callable[[_Lim, int], str], total: int = 0, caps: Sequence[int] = ()) -> str:
    """First rendering that fits Telegram's limits. `draw(lim, n)` shows `n` of `total`
    entries; `caps` overrides the tiers' entry counts (same length as _TIERS)."""
    lim = _TIERS[0]
    for index, lim in enumerate(_TIERS):
        cap = caps[index] if caps else lim.items
        text = tidy(draw(lim, min(total, cap)))
        if fits(text):
            return text
    shown = min(total, caps[-1] if caps else lim.items)
    while shown > 0:
        shown -= 1
        text = tidy(draw(lim, shown))
        if fits(text):
            return text
    raise ValueError("command answer does not fit even without entries")  # a template bug


def _view(name: str, locale: str, tz: ZoneInfo, lim: _Lim, **ctx: Any) -> str:
    return render(f"commands/{name}.html", locale=locale, tz=tz, lim=lim, **ctx)


def _plain(html_text: str) -> str:
    """Template output -> plain text (button labels and menu descriptions are not parsed)."""
    return " ".join(html.unescape(html_text).split())


def matcher_text(matcher: Matcher) -> str:
    """Alertmanager notation: name="value" or name=~"regex" (value quoted, escaped)."""
    op = "=~" if matcher.is_regex else "="
    return f"{matcher.name}{op}{json.dumps(matcher.value, ensure_ascii=False)}"


def _matchers(matchers: Iterable[Matcher]) -> list[str]:
    return [matcher_text(m) for m in matchers]


# ------------------------------------------------------------------ help, menu


def render_help(*, is_approver: bool, tz: ZoneInfo, locale: str = "en") -> str:
    """/help: one line per command, a note on the card buttons and on approver rights."""
    return _fit(
        lambda lim, _n: _view(
            "help",
            locale,
            tz,
            lim,
            is_approver=is_approver,
            silence_usage=SILENCE_USAGE,
            unsilence_usage=UNSILENCE_USAGE,
            history_usage=HISTORY_USAGE,
        )
    )


def command_menu(locale: str = "en") -> list[dict]:
    """BotCommand dicts for setMyCommands, same command set as /help."""
    menu = []
    for command in COMMANDS:
        description = _plain(render("commands/menu.html", locale=locale, command=command))
        if not _COMMAND_NAME.fullmatch(command) or not 1 <= len(description) <= 256:
            raise ValueError(f"bad menu entry for /{command}: {description!r}")
        menu.append({"command": command, "description": description})
    return menu


def render_usage(usage: str, *, error: str | None = None, tz: ZoneInfo, locale: str = "en") -> str:
    """A refused command: "⚠️ <error>" (when given) and the usage line."""
    return _fit(lambda lim, _n: _view("usage", locale, tz, lim, usage=usage, error=error or ""))


# --------------------------------------------------------------------- silences


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
    unreachable: local only, said clearly), "off" (no Alertmanager configured: not mentioned)."""
    if am_status not in AM_STATUSES:
        raise ValueError(f"am_status must be one of {AM_STATUSES}, not {am_status!r}")
    return _fit(
        lambda lim, _n: _view(
            "silence_created",
            locale,
            tz,
            lim,
            silence=silence,
            matchers=_matchers(silence.matchers),
            open_matches=max(0, open_matches),
            am_status=am_status,
            now=now,
        )
    )


def _local_row(silence: Silence) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": _matchers(silence.matchers),
        "ends_at": silence.ends_at,
        "by": silence.created_by,
        "reason": silence.reason,
        "remote": False,
    }


def _remote_row(silence: RemoteLike) -> dict[str, Any]:
    return {
        "id": silence.id,
        "matchers": _matchers(silence.matchers),
        "ends_at": silence.ends_at,
        "by": silence.created_by,
        "reason": silence.comment,
        "remote": True,
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
    rows = [_local_row(s) for s in local_sorted] + [_remote_row(r) for r in remote_sorted]

    text = _fit(
        lambda lim, n: _view(
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
            label = _plain(render("commands/expire_button.html", locale=locale, sid=silence.id))
            data = SilenceCB(act=SilenceAct.EXPIRE, sid=silence.id).pack()
            keyboard.append([{"text": label, "callback_data": data}])
    return text, keyboard


def render_silence_expired(
    silence: Silence, *, by: str | None, tz: ZoneInfo, locale: str = "en"
) -> str:
    """A silence ended: expired by a person (`by`), or by itself (by None: "ended at")."""
    return _fit(
        lambda lim, _n: _view(
            "silence_expired",
            locale,
            tz,
            lim,
            silence=silence,
            matchers=_matchers(silence.matchers),
            by=by,
            ended=silence.expired_at or silence.ends_at,
        )
    )


def render_unknown_silence(sid: str, *, tz: ZoneInfo, locale: str = "en") -> str:
    """/unsilence (or an expire button) named a silence that is unknown or already over."""
    return _fit(lambda lim, _n: _view("unknown_silence", locale, tz, lim, sid=sid))


# --------------------------------------------------------------------- history


def _outcome(row: HistoryRow) -> str:
    outcome = row.state or "none"
    if outcome == "succeeded" and row.dry_run:
        outcome = "dry_run"
    return outcome


def history_query(query: str | None) -> str | None:
    """`query` shortened to at most HISTORY_QUERY_MAX bytes of UTF-8 (on a character
    boundary), None when empty: what render_history_page accepts. A query holding ':'
    cannot be packed into callback data at all (aiogram's separator) and stays refused."""
    raw = (query or "").encode("utf-8")[:HISTORY_QUERY_MAX]
    return raw.decode("utf-8", "ignore") or None


def _check_query(query: str) -> None:
    if len(query.encode("utf-8")) > HISTORY_QUERY_MAX or ":" in query:
        raise ValueError(
            f"history query must be at most {HISTORY_QUERY_MAX} bytes (UTF-8) without ':' "
            f"to fit the page buttons' callback data; the caller shortens it: {query[:60]!r}"
        )


def history_keyboard(
    query: str | None, *, page: int, pages: int, per_page: int = 10, locale: str = "en"
) -> Keyboard:
    """[◀️ Previous][▶️ Next] for a 0-based `page` of `pages`; only existing directions,
    nothing for a single page. The query must be ≤ 40 bytes and hold no ':'."""
    q = query or ""
    _check_query(q)
    pages = max(1, pages)
    page = min(max(0, page), pages - 1)
    row = []
    if page > 0:
        data = HistoryPageCB(query=q, page=page - 1, n=per_page).pack()
        row.append({"text": button("prev", locale), "callback_data": data})
    if page < pages - 1:
        data = HistoryPageCB(query=q, page=page + 1, n=per_page).pack()
        row.append({"text": button("next", locale), "callback_data": data})
    for item in row:  # aiogram checks this too; keep the contract visible here
        if len(item["callback_data"].encode("utf-8")) > MAX_CALLBACK_BYTES:
            raise ValueError("history callback data over 64 bytes")
    return [row] if row else []


def render_history_page(
    query: str | None,
    items: list[HistoryRow],
    *,
    page: int,
    pages: int,
    tz: ZoneInfo,
    locale: str = "en",
    per_page: int = 10,
    pager_query: str | None = None,
) -> tuple[str, Keyboard]:
    """/history: one page of past incidents (in the given order, newest first expected).

    `page` is 0-based like HistoryPageCB.page; the header shows "page {page+1}/{pages}".
    `query` (None: all incidents) goes into the buttons' callback data, so it must be
    ≤ HISTORY_QUERY_MAX (40) bytes and hold no ':' — the caller truncates; ValueError
    otherwise.
    """
    pager = query if pager_query is None else pager_query
    _check_query(pager or "")
    pages = max(1, pages)
    page = min(max(0, page), pages - 1)
    rows = [
        {
            "incident": row.incident,
            "outcome": _outcome(row),
            "by": row.decided_by or "",
            "lasted": row.incident.resolved_at is not None,
        }
        for row in items
    ]
    text = _fit(
        lambda lim, n: _view(
            "history_page",
            locale,
            tz,
            lim,
            query=query or "",
            rows=rows[:n],
            more=len(rows) - n,
            page=page + 1,
            pages=pages,
        ),
        total=len(rows),
    )
    return text, history_keyboard(pager, page=page, pages=pages, per_page=per_page,
                                  locale=locale)


# -------------------------------------------------------------------- incidents


def _link_ok(link: str | None) -> bool:
    return bool(link) and len(link or "") <= _MAX_LINK and button_url_ok(link or "")


def render_incidents(items: list[OpenIncidentRow], *, tz: ZoneInfo, locale: str = "en") -> str:
    """/incidents: open incidents in the given order, at most 30 lines then "… N more".
    The id links to the card when `link` is a usable http(s) URL."""
    rows = [
        {
            "incident": row.incident,
            "state": row.state or "none",
            "link": row.link if _link_ok(row.link) else "",
        }
        for row in items
    ]
    return _fit(
        lambda lim, n: _view(
            "incidents", locale, tz, lim, rows=rows[:n], more=len(rows) - n, total=len(rows)
        ),
        total=len(rows),
        caps=(30, 20, 12),
    )


# Supergroups and channels have chat ids -100XXXXXXXXXX, i.e. -(10**12 + channel id) with
# 0 < channel id < 10**12 (TDLib's ZERO_CHANNEL_ID); basic groups are -1 .. -999999999999.
_CHANNEL_BASE = 1_000_000_000_000


def message_link(chat_id: int, message_id: int, thread_id: int | None = None) -> str | None:
    """t.me link to a message of a supergroup/channel (`?thread=` inside a topic);
    None for basic groups and private chats, which have no message links."""
    channel = -chat_id - _CHANNEL_BASE
    if not 0 < channel < _CHANNEL_BASE or message_id <= 0:
        return None
    url = f"https://t.me/c/{channel}/{message_id}"
    if thread_id is not None and thread_id > 0:
        url += f"?thread={thread_id}"
    return url


# ----------------------------------------------------------------- chat set-up


def render_not_allowed(*, user_id: int, tz: ZoneInfo, locale: str = "en") -> str:
    """A command only approvers may use, sent by someone else."""
    return _fit(lambda lim, _n: _view("not_allowed", locale, tz, lim, user_id=user_id))


def render_migrated(*, old_chat_id: int, new_chat_id: int, tz: ZoneInfo, locale: str = "en") -> str:
    """Posted in the new supergroup after the group was upgraded (chat id changed)."""
    return _fit(
        lambda lim, _n: _view(
            "migrated", locale, tz, lim, old_chat_id=old_chat_id, new_chat_id=new_chat_id
        )
    )
