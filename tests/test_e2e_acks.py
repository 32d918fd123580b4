"""Acknowledge and give back through real buttons: emulator -> aiogram -> SQLite -> card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import ALICE, BOB, CAROL, CHAT, MALLORY, AppFactory, Harness

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

DAVE = {"id": 444, "first_name": "Dave", "username": "dave"}  # another member
OTHER_CHAT = -1001000000077


def labels(message: dict[str, Any]) -> list[str]:
    return [b["text"] for row in message["reply_markup"]["inline_keyboard"] for b in row]


async def open_card(h: Harness) -> tuple[str, dict[str, Any]]:
    body = await h.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await h.settled()
    card = await h.wait_card(lambda m: inc in m["text"] and "Awaiting approval" in m["text"])
    return inc, card


async def press(h: Harness, message_id: int, word: str, user: dict[str, Any],
                chat: int | None = None, data: str | None = None) -> dict[str, Any]:
    """Press (or, with `data`, forge a press) and return the bot's answer once settled."""
    chat = chat or h.chat
    if data is None:
        data = h.button(h.em.message(chat, message_id), word)
    qid = h.em.press_button(chat, message_id, data, user, force=True)
    answer = await wait_for(lambda: h.em.callback_answer(qid), 15, message="press not answered")
    await h.settled()
    return answer


async def incidents_text(h: Harness) -> str:
    before = len(h.bot_messages())
    h.em.user_sends(CHAT, ALICE, "/incidents")
    await wait_for(lambda: len(h.bot_messages()) > before, 15)
    await h.settled()
    return h.bot_messages()[-1]["text"]


async def audit_of(h: Harness, inc: str, *actions: str) -> list[tuple[str, str, int | None]]:
    return [(r["action"], r["result"], r["user_id"]) for r in await h.audit(inc)
            if r["action"] in actions]


async def test_a_member_acknowledges_card_thread_and_incidents_show_it(
    app: Harness, emu: RunningEmulator
) -> None:
    emu.emulator.set_member(CHAT, CAROL)
    inc, card = await open_card(app)
    assert any("Ack" in t for t in labels(card))

    answer = await press(app, card["message_id"], "Ack", CAROL)
    assert answer["text"] == "Acknowledged — the incident is yours"
    assert not answer.get("show_alert")
    edited = app.em.message(CHAT, card["message_id"])
    assert "👀 Acknowledged by @carol at " in edited["text"]
    assert "Awaiting approval" in edited["text"]  # an ack decides nothing
    assert any("Unack" in t for t in labels(edited))
    assert not any(t.endswith(" Ack") for t in labels(edited))
    notes = [m["text"] for m in app.replies_to(card["message_id"])]
    assert any(t.startswith("👀 @carol acknowledged at ") and t.endswith("on it") for t in notes)
    assert "↳ 👀 acknowledged by @carol at " in await incidents_text(app)
    assert await audit_of(app, inc, "ack") == [("ack", "acknowledged", CAROL["id"])]

    # A second Ack (a keyboard from before the edit) takes nothing from Carol.
    answer = await press(app, card["message_id"], "", BOB,
                         data=app.button(card, "Ack"))
    assert answer["text"] == "Already acknowledged by @carol"
    assert "Acknowledged by @carol" in app.em.message(CHAT, card["message_id"])["text"]
    assert (await audit_of(app, inc, "ack"))[-1] == ("ack", "already_acked", BOB["id"])


async def test_ack_refused_for_a_non_member_a_foreign_chat_and_non_approvers(
    start_app: AppFactory, emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.emulator.add_chat(OTHER_CHAT, title="Payments", admins=[BOB])
    routes = tmp_path / "routes.toml"
    routes.write_text(f'[[route]]\nmatch = {{ namespace = "payments" }}\nchat_id = {OTHER_CHAT}\n'
                      f'\n[[route]]\nchat_id = {CHAT}\n')
    app = await start_app(routes_path=str(routes))
    inc, card = await open_card(app)
    ack = app.button(card, "Ack")

    # Mallory sees the public group's card but never joined it.
    answer = await press(app, card["message_id"], "Ack", MALLORY)
    assert answer["show_alert"] is True
    assert answer["text"] == "Only members of a chat this incident is in may acknowledge it"

    # Bob is in the payments chat, which this incident is not routed to: forged data naming
    # it on a message there acknowledges nothing.
    there = app.em.user_sends(OTHER_CHAT, BOB, "hello")
    answer = await press(app, there["message_id"], "", BOB, chat=OTHER_CHAT, data=ack)
    assert answer["show_alert"] is True
    assert answer["text"] == "This incident is not shown in this chat"

    # In the right chat, but on another incident's card: a press acts only on the incident
    # of the message pressed.
    other = (await app.alert("two-alerts-firing.json"))["opened"][0]
    await app.settled()
    other_card = await app.wait_card(lambda m: other in m["text"])
    answer = await press(app, other_card["message_id"], "", ALICE, data=ack)
    assert answer["show_alert"] is True
    assert answer["text"].startswith("This button does not belong to the message")

    for message in (card, other_card):
        assert "Acknowledged" not in app.em.message(CHAT, message["message_id"])["text"]
    assert await audit_of(app, inc, "ack") == [
        # Refused before the ack service is asked: the pressed message is not this incident's.
        ("ack", "ack_not_member", MALLORY["id"]), ("ack", "not_here", BOB["id"]),
        ("ack", "wrong_message", ALICE["id"]),
    ]


async def test_ack_by_approvers_only(start_app: AppFactory, emu: RunningEmulator) -> None:
    emu.emulator.set_member(CHAT, CAROL)
    app = await start_app(ack_by="approvers")
    inc, card = await open_card(app)
    answer = await press(app, card["message_id"], "Ack", CAROL)
    assert answer["show_alert"] is True and "ACK_BY=approvers" in answer["text"]
    answer = await press(app, card["message_id"], "Ack", ALICE)
    assert answer["text"] == "Acknowledged — the incident is yours"
    assert "Acknowledged by @alice" in app.em.message(CHAT, card["message_id"])["text"]
    assert await audit_of(app, inc, "ack") == [
        ("ack", "ack_not_allowed", CAROL["id"]), ("ack", "acknowledged", ALICE["id"]),
    ]


async def test_unack_by_the_acker_or_an_approver_not_by_another_member(
    app: Harness, emu: RunningEmulator
) -> None:
    emu.emulator.set_member(CHAT, CAROL)
    emu.emulator.set_member(CHAT, DAVE)
    inc, card = await open_card(app)
    mid = card["message_id"]
    await press(app, mid, "Ack", CAROL)

    answer = await press(app, mid, "Unack", DAVE)
    assert answer["show_alert"] is True
    assert answer["text"] == "Only @carol or an approver of this incident may give it back"
    assert "Acknowledged by @carol" in app.em.message(CHAT, mid)["text"]

    answer = await press(app, mid, "Unack", CAROL)
    assert answer["text"] == "Given back — nobody is on it now"
    card = app.em.message(CHAT, mid)
    assert "Acknowledged" not in card["text"]
    assert any(t.endswith(" Ack") for t in labels(card))
    assert "acknowledged by" not in await incidents_text(app)

    await press(app, mid, "Ack", CAROL)
    answer = await press(app, mid, "Unack", ALICE)
    assert answer["text"] == "Given back — nobody is on it now"
    assert "Acknowledged" not in app.em.message(CHAT, mid)["text"]
    notes = [m["text"] for m in app.replies_to(mid)]
    assert any(t.startswith("↩️ @carol gave the incident back at ") for t in notes)
    assert any(t.startswith("↩️ @alice took the incident back from @carol at ") for t in notes)

    assert await audit_of(app, inc, "ack", "unack") == [
        ("ack", "acknowledged", CAROL["id"]),
        ("unack", "unack_not_allowed", DAVE["id"]),
        ("unack", "given_back", CAROL["id"]),
        ("ack", "acknowledged", CAROL["id"]),
        ("unack", "given_back", ALICE["id"]),
    ]
    rows = [r for r in await app.audit(inc) if r["action"] == "unack" and r["detail"]]
    assert rows[-1]["detail"] == "acknowledged by @carol" and rows[-1]["at"]


# Two routes into CHAT with their own approvers, and one into the payments chat: Bob approves
# only there and Dave only the billing route here (APPROVER_IDS, the default route's
# approvers, still names Bob: it brings nothing here while a catch-all route exists).
SPLIT_ROUTES = """
[[route]]
match = {{ namespace = "payments" }}
chat_id = {other}
approvers = [{bob}]

[[route]]
match = {{ namespace = "billing" }}
chat_id = {chat}
approvers = [{dave}]

[[route]]
chat_id = {chat}
approvers = [{alice}]
"""


async def split_app(start_app: AppFactory, emu: RunningEmulator, tmp_path: Path,
                    **overrides: Any) -> Harness:
    emu.emulator.add_chat(OTHER_CHAT, title="Payments", admins=[BOB])
    for user in (BOB, CAROL, DAVE):
        emu.emulator.set_member(CHAT, user)
    routes = tmp_path / "routes.toml"
    routes.write_text(SPLIT_ROUTES.format(other=OTHER_CHAT, chat=CHAT, bob=BOB["id"],
                                          dave=DAVE["id"], alice=ALICE["id"]))
    return await start_app(routes_path=str(routes), **overrides)


async def test_unack_needs_an_approver_of_a_route_that_brings_this_incident_here(
    start_app: AppFactory, emu: RunningEmulator, tmp_path: Path
) -> None:
    app = await split_app(start_app, emu, tmp_path)
    inc, card = await open_card(app)  # namespace shop: the catch-all route, Alice approves
    mid = card["message_id"]
    await press(app, mid, "Ack", CAROL)

    # An approver of another chat, and an approver of another route into this chat, are
    # members here like anyone else: they may not take Carol's ack away.
    for outsider in (BOB, DAVE):
        answer = await press(app, mid, "Unack", outsider)
        assert answer["show_alert"] is True
        assert answer["text"] == "Only @carol or an approver of this incident may give it back"
        assert "Acknowledged by @carol" in app.em.message(CHAT, mid)["text"]

    answer = await press(app, mid, "Unack", ALICE)
    assert answer["text"] == "Given back — nobody is on it now"
    assert "Acknowledged" not in app.em.message(CHAT, mid)["text"]
    assert await audit_of(app, inc, "ack", "unack") == [
        ("ack", "acknowledged", CAROL["id"]),
        ("unack", "unack_not_allowed", BOB["id"]),
        ("unack", "unack_not_allowed", DAVE["id"]),
        ("unack", "given_back", ALICE["id"]),
    ]


async def test_ack_by_approvers_means_approvers_of_this_incident_here(
    start_app: AppFactory, emu: RunningEmulator, tmp_path: Path
) -> None:
    app = await split_app(start_app, emu, tmp_path, ack_by="approvers")
    inc, card = await open_card(app)
    for outsider in (BOB, DAVE):
        answer = await press(app, card["message_id"], "Ack", outsider)
        assert answer["show_alert"] is True and "ACK_BY=approvers" in answer["text"]
    assert "Acknowledged" not in app.em.message(CHAT, card["message_id"])["text"]
    answer = await press(app, card["message_id"], "Ack", ALICE)
    assert answer["text"] == "Acknowledged — the incident is yours"
    assert await audit_of(app, inc, "ack") == [
        ("ack", "ack_not_allowed", BOB["id"]), ("ack", "ack_not_allowed", DAVE["id"]),
        ("ack", "acknowledged", ALICE["id"]),
    ]
