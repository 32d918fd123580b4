"""Past incidents and how they ended: the one history module.

Two ways in, one row type and one set of outcome words:
- the /history command searches every incident (by target, alert name or INC- id), a page
  at a time with ◀️/▶️ buttons (`parse_history_args`, `search_page`, `render_history_page`);
- the card's History button answers in the incident's thread with the earlier incidents of
  the same target (`target_history`, `render_target_history`).

Rendering is pure (no clock, no I/O); the two readers take the database explicitly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from bot.cards.card import render_message
from bot.cards.command_text import Keyboard, fit, view
from bot.command_args import INCIDENT_ID, ArgsError, split_args, strip_command
from bot.models import Decision, Incident
from bot.texts import button, since
from keyboards.callbacks import MAX_CALLBACK_BYTES, HistoryPageCB
from keyboards.incident import is_dry_run
from storage import repo
from storage.db import Database
from storage.repo import Conn

HISTORY_USAGE = "/history [target|INC-id|alertname] [n (1-50)]"
HISTORY_DEFAULT, HISTORY_MAX = 10, 50
# HistoryPageCB packs as "h1:<query>:<page>": 40 bytes of query leave room for the
# prefix, two separators and any realistic page number within 64 bytes.
HISTORY_QUERY_MAX = 40
TARGET_HISTORY_MAX = 15  # earlier incidents the History button lists


# ------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class HistoryArgs:
    query: str | None  # a target, alert name or an INC- id (upper-cased)
    limit: int

    @property
    def incident_id(self) -> str | None:
        if self.query and INCIDENT_ID.fullmatch(self.query):
            return self.query
        return None


def parse_history_args(text: str | None) -> HistoryArgs:
    """`/history [target|INC-id|alertname] [n]`; a quoted number is a query, not n."""
    found = split_args(strip_command(text))
    limit = HISTORY_DEFAULT
    if found and not found[-1].quoted and re.fullmatch(r"[+-]?[0-9]+", found[-1].raw):
        limit = int(found.pop().raw)
        if not 1 <= limit <= HISTORY_MAX:
            raise ArgsError("n_range", low=1, high=HISTORY_MAX)
    if len(found) > 1:
        raise ArgsError("one_query")
    query = found[0].text.strip() if found else None
    if query and INCIDENT_ID.fullmatch(query):
        query = query.upper()
    return HistoryArgs(query or None, limit)


# ------------------------------------------------------------------------ rows


@dataclass(frozen=True)
class HistoryRow:
    """One past incident and how it ended."""

    incident: Incident
    state: str | None  # DecisionState value of its last decision; None: no decision
    decided_by: str | None  # who approved / rejected, if anyone
    dry_run: bool = False  # the fix "succeeded" in dry-run mode

    @classmethod
    def of(cls, incident: Incident, decision: Decision | None) -> HistoryRow:
        return cls(
            incident=incident,
            state=decision.state.value if decision else None,
            decided_by=decision.decided_by if decision else None,
            dry_run=bool(decision and is_dry_run(decision)),
        )

    @property
    def outcome(self) -> str:
        """A key of the outcome words in templates/<locale>/commands/_words.html."""
        outcome = self.state or "none"
        return "dry_run" if outcome == "succeeded" and self.dry_run else outcome


async def _rows(conn: Conn, incidents: list[Incident]) -> list[HistoryRow]:
    return [HistoryRow.of(inc, await repo.current_decision(conn, inc.id)) for inc in incidents]


# ------------------------------------------------------------ /history: search


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
            "outcome": row.outcome,
            "by": row.decided_by or "",
            "lasted": row.incident.resolved_at is not None,
        }
        for row in items
    ]
    text = fit(
        lambda lim, n: view(
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


async def search_page(
    db: Database, query: str | None, per_page: int, page: int, *, tz: ZoneInfo, locale: str,
    chat_id: int | None = None,
) -> tuple[str, Keyboard]:
    """One page of /history for `query` (None: every incident; with chat_id: those routed
    into that chat), with its page buttons."""
    # The page buttons carry the query: ':' is aiogram's separator, so it travels encoded.
    pager = history_query(quote(unquote(query or ""), safe=""))
    # A long query is cut to what a button can carry; search what the buttons repeat.
    query = unquote(pager) if pager else None
    async with db.read() as conn:
        incidents, total = await repo.history_page(conn, query, per_page, page * per_page,
                                                   chat_id)
        rows = await _rows(conn, incidents)
    pages = max(1, math.ceil(total / per_page))
    return render_history_page(
        query, rows, page=min(page, pages - 1), pages=pages, tz=tz, locale=locale,
        per_page=per_page, pager_query=pager or "",
    )


# ------------------------------------------------- History button: this target


def render_target_history(
    target: str, items: list[HistoryRow], *, tz: ZoneInfo, locale: str = "en"
) -> str:
    """Earlier incidents of one target: id, opened, how long, outcome (newest first)."""
    ordered = sorted(items, key=lambda i: (i.incident.opened_at, i.incident.id), reverse=True)
    rows = []
    for item in ordered[:TARGET_HISTORY_MAX]:
        inc = item.incident
        took = since(inc.opened_at, inc.resolved_at) if inc.resolved_at is not None else None
        rows.append({"incident": inc, "duration": took, "outcome": item.outcome})
    return render_message(
        "thread/history.html",
        tz=tz,
        locale=locale,
        target=target,
        items=rows,
        more=max(0, len(ordered) - TARGET_HISTORY_MAX),
    )


async def target_history(
    db: Database, incident_id: str, *, tz: ZoneInfo, locale: str, chat_id: int | None = None
) -> tuple[Incident, str, int] | None:
    """(the incident, the History button's answer, incidents listed); None: unknown id."""
    async with db.read() as conn:
        inc = await repo.get_incident(conn, incident_id)
        if inc is None:
            return None
        past = await repo.recent_incidents_for_target(
            conn, inc.target, exclude=inc.id, limit=TARGET_HISTORY_MAX + 10, chat_id=chat_id
        )
        rows = await _rows(conn, past)
    return inc, render_target_history(inc.target, rows, tz=tz, locale=locale), len(rows)
