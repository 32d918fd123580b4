"""/incidents: the open incidents, each linked to its card. Pure; fitted under Telegram's
limits by bot.cards.fitting."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.cards.fitting import fit, view
from bot.cards.links import button_url_ok
from bot.models import Incident

_MAX_LINK = 512  # an href longer than this is not one of ours: show the id as text


@dataclass(frozen=True)
class OpenIncidentRow:
    """One line of /incidents."""

    incident: Incident
    state: str | None  # DecisionState value of the current decision; None: no decision
    link: str | None  # t.me link to the card (see message_link), or None


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
    return fit(
        lambda lim, n: view(
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
