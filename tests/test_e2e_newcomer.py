"""What a new user tripped over, through the real app and emulator: /incidents says where
each incident stands, a resolve with nothing to approve posts no "Cancelled", and a refused
Expire press is about silences."""

from __future__ import annotations

import re

from harness import ALICE, CHAT, MALLORY, Harness, fixture_bytes, say

from bot.models import DecisionState
from sandbox.emulator import wait_for

# No built-in rule acts on it: the catch-all proposes no action, so nothing is asked.
MANUAL = "LabCertificateExpiry"


def manual(name: str) -> bytes:
    """A fixture with its alert renamed to one no rule has an action for (and a
    fingerprint of its own, so it is a different alert)."""
    return (fixture_bytes(name).replace(b"LabHighErrorRate", MANUAL.encode())
            .replace(b"85c19c82558d1100", b"85c19c82558d1101"))


def line_of(text: str, incident_id: str) -> str:
    (line,) = [x for x in text.splitlines() if incident_id in x]
    return line


async def test_incidents_says_nothing_to_approve_and_silenced_until(app: Harness) -> None:
    silenced = (await app.alert("crashloop-firing.json"))["opened"][0]
    asked = (await app.alert("single-firing.json"))["opened"][0]
    status, body = await app.post("/alerts/alertmanager", manual("single-firing.json"))
    assert status == 200
    nothing = body["opened"][0]
    await app.settled()
    decision = await app.decision(nothing)
    assert decision.state is DecisionState.PENDING and decision.proposal is not None
    assert decision.proposal.action is None
    quiet = await say(app, ALICE, "/silence alertname=LabPodCrashLooping 2h looking")
    until = re.search(r"Until: (\d{4}-\d\d-\d\d \d\d:\d\d \S+)", quiet["text"])
    assert until, quiet["text"]
    await app.settled()

    listing = (await say(app, MALLORY, "/incidents"))["text"]
    assert "nothing to approve" in line_of(listing, nothing)
    assert f"silenced until {until.group(1)}" in line_of(listing, silenced)
    assert "awaiting approval" in line_of(listing, asked)  # a real question still reads so
    assert listing.count("awaiting approval") == 1


async def test_resolve_with_nothing_to_approve_posts_no_cancelled_note(app: Harness) -> None:
    _, body = await app.post("/alerts/alertmanager", manual("single-firing.json"))
    inc = body["opened"][0]
    await app.settled()
    (card,) = app.cards()
    await app.post("/alerts/alertmanager", manual("single-resolved.json"))
    await app.settled()
    assert (await app.decision(inc)).state is DecisionState.CANCELLED
    replies = [r["text"] for r in app.replies_to(card["message_id"])]
    assert replies and not any("Cancelled" in r for r in replies), replies
    assert any("esolved" in r for r in replies), replies  # the resolved note still comes
    audit = await app.audit(inc)
    assert ("cancel", "cancelled") in {(a["action"], a["result"]) for a in audit}


async def test_non_approver_pressing_expire_is_told_about_silences(app: Harness) -> None:
    await say(app, ALICE, "/silence service=api 1h deploy")
    listing = await say(app, ALICE, "/silences")
    (button,) = [b for row in listing["reply_markup"]["inline_keyboard"] for b in row]
    qid = app.em.press_button(CHAT, listing["message_id"], button["callback_data"], MALLORY)
    answer = await wait_for(lambda: app.em.callback_answer(qid), 15)
    assert "silences" in answer["text"] and "approve in" not in answer["text"], answer
    assert answer.get("show_alert") is True
    assert str(MALLORY["id"]) in answer["text"]
