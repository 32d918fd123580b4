"""/incidents: the open incidents, each linked to its card. Pure; fitted under Telegram's
limits by bot.cards.command_text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cards.command_text import fit, view
from bot.models import Decision, DecisionState, Incident, Silence
from keyboards.urls import button_url_ok

_MAX_LINK = 512  # an href longer than this is not one of ours: show the id as text


@dataclass(frozen=True)
class OpenIncidentRow:
    """One line of /incidents."""

    incident: Incident
    # DecisionState value of the current decision, "nothing_to_approve" for a pending one
    # without an action; None: no decision
    state: str | None
    link: str | None  # t.me link to the card (bot.cards.links.message_link), or None
    silenced_until: datetime | None = None  # shown instead of the state while silenced

    @classmethod
    def of(cls, incident: Incident, decision: Decision | None, silence: Silence | None,
           link: str | None) -> OpenIncidentRow:
        """Where the incident stands, as a person reads it: a silence first (nobody is
        asked anything while it lasts), then a pending decision with nothing to approve."""
        state = decision.state.value if decision else None
        if (decision is not None and decision.state is DecisionState.PENDING
                and (decision.proposal is None or decision.proposal.action is None)):
            state = "nothing_to_approve"
        live = silence is not None and silence.expired_at is None
        return cls(incident, state, link, silence.ends_at if live and silence else None)


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
            "silenced_until": row.silenced_until,
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
