"""/help names every command the bot answers and every button it can put under a message:
the commands are read from the running Dispatcher, the buttons from real keyboards."""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

import pytest
from aiogram import Router
from aiogram.filters import Command
from factories import T0, UTC_TZ, make_incident
from harness import ALICE, MALLORY, Harness, say

from bot.chat.commands import render_help
from bot.chat.history import history_keyboard
from bot.models import (
    GRAFANA_LINK_ANNOTATIONS,
    Action,
    Decision,
    DecisionState,
    IncidentStatus,
    Proposal,
    ProposalSource,
    Risk,
    Silence,
    Verb,
)
from bot.silences.replies import render_silence_list
from keyboards.incident import incident_keyboard, reminder_keyboard
from sandbox.judge import check_message_text

SID = "S-1A2B3C"


def registered_commands(router: Router) -> set[str]:
    """Every /command a message handler of `router` (or of its sub-routers) answers."""
    found: set[str] = set()
    for handler in router.message.handlers:
        for flt in handler.filters or []:
            if isinstance(flt.callback, Command):
                found |= {c for c in flt.callback.commands if isinstance(c, str)}
    for sub in router.sub_routers:
        found |= registered_commands(sub)
    return found


def _decision(state: DecisionState, *, action: bool, source: ProposalSource,
              dry_run: bool) -> Decision:
    act = Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop")
    return Decision(
        id=7, incident_id="INC-7K3F9Q", state=state, required_approvals=1, created_at=T0,
        updated_at=T0, result={"dry_run": dry_run},
        proposal=Proposal(action=act if action else None, risk=Risk.MEDIUM, summary="s",
                          reasoning="r", source=source, source_name="x"),
    )


def every_button_label(locale: str) -> set[str]:
    """The labels of every keyboard the bot can send: cards in every state (with and
    without an action, ack, silence, links, dry-run, playbook source), reminders, the
    /silences Expire buttons (their silence id shown as "S-…") and the /history pager."""
    labels: set[str] = set()
    silence = Silence(id=SID, matchers=[], starts_at=T0, ends_at=T0 + timedelta(hours=1),
                      created_by="@alice", created_by_id=111, reason="")
    decisions: list[Decision | None] = [None]
    for state, action, source, dry in itertools.product(
        DecisionState, (True, False), ProposalSource, (True, False)
    ):
        decisions.append(_decision(state, action=action, source=source, dry_run=dry))
    for decision, status, acked, silenced, links in itertools.product(
        decisions, IncidentStatus, (None, 111), (None, silence), (True, False)
    ):
        url = "https://grafana.example.com/d/1" if links else None
        keyboard = incident_keyboard(
            make_incident(status=status, acked_by_id=acked), decision, silenced,
            source_url=url, runbook_url=url, locale=locale,
            links=[(key, url) for key in GRAFANA_LINK_ANNOTATIONS] if url else None,
        )
        labels |= {b["text"] for row in keyboard for b in row}
    labels |= {b["text"] for row in reminder_keyboard("INC-7K3F9Q", locale) for b in row}
    _, expire = render_silence_list([silence], [], can_expire=True, tz=UTC_TZ, locale=locale,
                                    now=T0)
    labels |= {b["text"].replace(SID, "S-…") for row in expire for b in row}
    pager = history_keyboard("cart", page=1, pages=3, locale=locale)
    labels |= {b["text"] for row in pager for b in row}
    return labels


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
@pytest.mark.parametrize("approver", [True, False])
def test_help_names_every_button(locale: str, approver: bool) -> None:
    text = check_message_text(render_help(is_approver=approver, tz=UTC_TZ, locale=locale)).text
    labels = every_button_label(locale)
    assert len(labels) >= 12  # the enumeration itself reaches every kind of button
    missing = sorted(label for label in labels if label not in text)
    assert not missing, f"add to templates/{locale}/commands/help.html: {missing}"


async def test_help_in_the_chat_names_every_registered_command_and_real_button(
    app: Harness,
) -> None:
    assert app.app.dp is not None
    commands = registered_commands(app.app.dp)
    assert {"help", "silence", "start", "whoami"} <= commands  # the walk finds handlers
    await app.alert("crashloop-firing.json")
    await app.settled()
    (card,) = app.cards()
    listing = await say(app, ALICE, "/silence service=api 1h deploy")
    listing = await say(app, ALICE, "/silences")
    sid = re.search(r"S-[0-9A-F]{6}", listing["text"]).group(0)
    real = {b["text"] for m in (card, listing)
            for row in m["reply_markup"]["inline_keyboard"] for b in row}
    assert len(real) >= 5
    for user in (ALICE, MALLORY):
        shown = (await say(app, user, "/help"))["text"]
        named = set(re.findall(r"^/([a-z_]+) — ", shown, re.M))
        assert named == commands, (named ^ commands)
        missing = [label for label in real if label.replace(sid, "S-…") not in shown]
        assert not missing, missing
