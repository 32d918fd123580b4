"""A storm's digest: one message per chat that lists the incidents the storm held back from
getting a card each. A pure view of stored state (no clock), fitted to one message.

What it shows: whether the storm is on or over (then the totals), the incidents waiting for
their own card (flagged), counts by severity, alert name and namespace, every incident's id
(as many as fit), and one page of the incidents, most severe first, with buttons to open
one's own card and to page through all.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.cards.card import Card
from bot.cards.command_text import TIERS, Lim, fit
from bot.cards.fit import first_fit
from bot.models import IncidentStatus
from bot.texts import button, macro_text, render
from keyboards.callbacks import DigestOpenCB, DigestPageCB
from storage.repo.digests import DigestRow, Entry

DIGEST_PAGE_SIZE = 8  # incidents a page (each with its open button while it is held)
_COUNTS = (8, 6, 4)  # counted values shown per line in each tier; then fewer, down to none
_ID_LEVELS = (200, 100, 50)  # ids listed in one line when not all of them fit
_RANK = {"critical": 4, "error": 3, "high": 3, "page": 3, "warning": 2, "info": 1}


@dataclass(frozen=True)
class DigestView:
    digest: DigestRow
    entries: list[Entry]
    tz: ZoneInfo
    locale: str = "en"


def _rank(entry: Entry) -> tuple[bool, int, object, str]:
    """Flagged first (waiting for their own card), then most severe, oldest, by id."""
    inc = entry.incident
    return (not _flagged(entry), -_RANK.get(inc.severity.lower(), 2), inc.opened_at, inc.id)


def _flagged(entry: Entry) -> bool:
    return entry.held and entry.urgent and entry.incident.status is IncidentStatus.FIRING


def ordered(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=_rank)


def pages_of(count: int) -> int:
    return max(1, -(-count // DIGEST_PAGE_SIZE))


def _counted(values: list[str]) -> list[tuple[str, int]]:
    return sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))


def render_digest(view: DigestView) -> Card:
    entries = ordered(view.entries)
    pages = pages_of(len(entries))
    page = min(max(0, view.digest.page), pages - 1)
    rows = entries[page * DIGEST_PAGE_SIZE:(page + 1) * DIGEST_PAGE_SIZE]
    flagged = [e.incident for e in entries if _flagged(e)]
    counts = {
        "severities": _counted([e.incident.severity.lower() or "unknown" for e in entries]),
        "alertnames": _counted([e.incident.alertname for e in entries]),
        "namespaces": _counted([e.incident.namespace for e in entries if e.incident.namespace]),
    }
    totals = {
        "total": len(entries),
        "own": sum(e.message_id is not None for e in entries),
        "held": sum(e.held for e in entries),
        "resolved": sum(e.incident.status is IncidentStatus.RESOLVED for e in entries),
    }
    d = view.digest
    ids = [e.incident.id for e in entries]

    def draw(lim: Lim, n: int, listed: int = 0) -> str:
        return render("digest.html", locale=view.locale, tz=view.tz, lim=lim,
                      started=d.started_at, ended=d.ended_at, page=page + 1, pages=pages,
                      rows=[{"inc": e.incident, "posted": e.message_id is not None,
                             "flagged": _flagged(e)} for e in rows],
                      flagged=flagged[:n], flagged_more=max(0, len(flagged) - n),
                      counts={k: v[:n] for k, v in counts.items()},
                      more={k: max(0, len(v) - n) for k, v in counts.items()},
                      ids=ids[:listed], ids_more=len(ids) - listed if listed else 0, **totals)

    # Every incident's id in the message itself while they fit (most of a storm is then
    # visible at the first post), fewer when they do not; pages and buttons do the rest.
    levels = [k for k in dict.fromkeys((len(ids), *_ID_LEVELS)) if 0 < k <= len(ids)]
    text = first_fit(draw(TIERS[0], _COUNTS[0], k) for k in levels) or fit(
        draw, max(len(flagged), *(len(v) for v in counts.values())), _COUNTS)
    return Card(text, digest_keyboard(view, rows, page, pages))


def digest_keyboard(view: DigestView, rows: list[Entry], page: int, pages: int
                    ) -> list[list[dict]]:
    """An open button for each incident of the page still held, two a row; then ◀️ ▶️."""
    d = view.digest.id
    opens = [{"text": macro_text("buttons.html", "open_card", view.locale, id=e.incident.id,
                                 severity=e.incident.severity),
              "callback_data": DigestOpenCB(dig=d, inc=e.incident.id).pack()}
             for e in rows if e.held]
    keyboard = [opens[i:i + 2] for i in range(0, len(opens), 2)]
    nav = []
    if page > 0:
        nav.append({"text": button("prev", view.locale),
                    "callback_data": DigestPageCB(dig=d, page=page - 1).pack()})
    if page < pages - 1:
        nav.append({"text": button("next", view.locale),
                    "callback_data": DigestPageCB(dig=d, page=page + 1).pack()})
    if nav:
        keyboard.append(nav)
    return keyboard
