"""Chat commands, silences, Alertmanager sync, routing, topics, migration, zh-TW."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from am_standin import start_am_standin
from harness import ALICE, BOB, CHAT, MALLORY, AppFactory, Harness, fixture, is_card, say
from pg import change

from bot.models import DecisionState
from sandbox.emulator import wait_for
from sandbox.judge import check_message_text
from sandbox.server import RunningEmulator
from storage import repo

BOTNAME = "opsgate_sandbox_bot"
OTHER_CHAT = -1001000000002
FORUM = -1001000000003
BASIC_GROUP = -4001


def has_cjk(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


# ------------------------------------------------------------------ commands


@pytest.mark.parametrize("suffix", ["", f"@{BOTNAME}"])
async def test_help_with_and_without_botname(app: Harness, suffix: str) -> None:
    answer = await say(app, MALLORY, f"/help{suffix}")
    assert "/silence" in answer["text"] and "/history" in answer["text"]


async def test_commands_for_other_bots_and_unserved_chats_are_ignored(app: Harness) -> None:
    app.em.add_chat(-100555, title="Not configured")
    app.em.user_sends(-100555, ALICE, "/help")
    app.em.user_sends(CHAT, ALICE, "/help@some_other_bot")
    marker = await say(app, ALICE, "/whoami")
    elsewhere = await say(app, ALICE, "/whoami", chat=-100555)  # set-up help works anywhere
    await app.settled()
    assert marker and elsewhere
    assert [m["text"] for m in app.bot_messages(-100555)] == [elsewhere["text"]]
    answered = [m for m in app.bot_messages()
                if (m.get("reply_to_message") or {}).get("text") == "/help@some_other_bot"]
    assert answered == []


async def test_menu_is_registered_per_scope(app: Harness) -> None:
    await app.settled()
    scopes = [c["params"].get("scope") for c in app.em.calls("setMyCommands") if c["ok"]]
    kinds = sorted(s["type"] if isinstance(s, dict) else str(s) for s in scopes)
    assert kinds == ["all_group_chats", "all_private_chats"]
    group = app.em.commands({"type": "all_group_chats"})
    assert {c["command"] for c in group} >= {"silence", "silences", "unsilence", "history",
                                            "incidents", "help", "whoami"}


async def test_silence_by_matchers_suppresses_new_cards(app: Harness) -> None:
    await app.alert("single-firing.json")
    await app.settled()
    (card,) = app.cards()
    answer = await say(app, ALICE, "/silence namespace=payments alertname=~Lab.* 2h maintenance")
    assert re.search(r"S-[0-9A-F]{6}", answer["text"])
    assert "1" in answer["text"]  # matches one open incident right now
    await app.settled()
    assert "silenced until" in app.em.message(CHAT, card["message_id"])["text"].lower()
    # A new episode of a matching alert is stored but posts nothing.
    payload = fixture("crashloop-firing.json")
    for alert in payload["alerts"]:
        alert["labels"]["namespace"] = "payments"
        alert["labels"]["alertname"] = "LabPodCrashLooping"
    payload["groupKey"] = "other-group"
    status, body = await app.post("/alerts/alertmanager", payload)
    assert status == 200 and body["silenced"] == body["opened"]
    await app.settled()
    assert len(app.cards()) == 1


async def test_silence_by_incident_id_and_non_approver(app: Harness) -> None:
    body = await app.alert("crashloop-firing.json")
    inc = body["opened"][0]
    await app.settled()
    refused = await say(app, MALLORY, f"/silence {inc} 1h")
    assert "only approvers" in refused["text"].lower() and "666" in refused["text"]
    answer = await say(app, BOB, f"/silence {inc.lower()} 30m flapping")
    assert "alertname" in answer["text"] and "LabPodCrashLooping" in answer["text"]
    await app.settled()
    (card,) = app.cards()
    assert "@bob" in card["text"] and "silenced until" in card["text"].lower()
    audit = [(r["action"], r["result"], r["user_id"]) for r in await app.audit()]
    assert ("silence", "not_allowed", MALLORY["id"]) in audit
    assert ("silence", "created", BOB["id"]) in audit


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("/silence", "Usage"),
        ("/silence service=api", "Usage"),
        ("/silence service=api soon", "Usage"),
        ("/silence alertname=~( 1h", "Usage"),
        ("/silence INC-ZZZZZZ 1h", "unknown incident"),
        ("/unsilence", "Usage"),
        ("/unsilence S-000000", "S-000000"),
        ("/history cart 999", "Usage"),
    ],
)
async def test_bad_arguments_get_a_usage_line(app: Harness, text: str, expect: str) -> None:
    answer = await say(app, ALICE, text)
    assert expect.lower() in answer["text"].lower()


async def test_silences_list_expire_button_and_unsilence(app: Harness) -> None:
    await say(app, ALICE, "/silence service=api 1h deploy")
    second = await say(app, ALICE, "/silence service=db 1h backup")
    sid = re.search(r"S-[0-9A-F]{6}", second["text"]).group(0)
    listing = await say(app, MALLORY, "/silences")
    assert "service" in listing["text"] and not listing.get("reply_markup")
    listing = await say(app, ALICE, f"/silences@{BOTNAME}")
    buttons = [b for row in listing["reply_markup"]["inline_keyboard"] for b in row]
    assert len(buttons) == 2
    refused = app.em.press_button(CHAT, listing["message_id"], buttons[0]["callback_data"],
                                  MALLORY)
    await wait_for(lambda: app.em.callback_answer(refused), 15)
    assert app.em.callback_answer(refused).get("show_alert") is True
    qid = app.em.press_button(CHAT, listing["message_id"], buttons[0]["callback_data"], ALICE)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    refreshed = await wait_for(
        lambda: (m := app.em.message(CHAT, listing["message_id"]))["edit_count"] and m, 15
    )
    assert len([b for row in refreshed["reply_markup"]["inline_keyboard"] for b in row]) == 1
    gone = await say(app, BOB, f"/unsilence {sid.lower()}")
    assert sid in gone["text"] and "@bob" in gone["text"]
    async with app.db.read() as conn:
        assert await repo.active_silences(conn, datetime.now(UTC)) == []


async def test_history_pages_edit_the_same_message(app: Harness) -> None:
    for i in range(4):
        payload = fixture("single-firing.json")
        payload["alerts"][0]["startsAt"] = f"2026-11-27T1{i}:00:00Z"
        await app.post("/alerts/alertmanager", payload)
        resolved = fixture("single-resolved.json")
        resolved["alerts"][0]["startsAt"] = f"2026-11-27T1{i}:00:00Z"
        resolved["alerts"][0]["endsAt"] = f"2026-11-27T1{i}:30:00Z"
        await app.post("/alerts/alertmanager", resolved)
    await app.settled()
    page = await say(app, MALLORY, "/history checkout 3")
    assert "1/2" in page["text"]
    assert page["text"].count("INC-") == 3
    (next_button,) = [b for row in page["reply_markup"]["inline_keyboard"] for b in row]
    qid = app.em.press_button(CHAT, page["message_id"], next_button["callback_data"], MALLORY)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    edited = await wait_for(lambda: (m := app.em.message(CHAT, page["message_id"]))
                            and m["edit_count"] > 0 and m, 15)
    assert "2/2" in edited["text"]
    everything = await say(app, ALICE, "/history")
    assert "INC-" in everything["text"]
    odd = await say(app, ALICE, "/history host:9100")
    assert "host:9100" in odd["text"]
    long = await say(app, ALICE, "/history " + "y" * 80)
    assert "y" * 30 in long["text"]


async def test_incidents_lists_open_ones_with_links(app: Harness) -> None:
    await app.alert("crashloop-firing.json")
    await app.alert("single-firing.json")
    await app.settled()
    answer = await say(app, ALICE, "/incidents")
    links = [e["url"] for e in answer.get("entities", []) if e["type"] == "text_link"]
    card_ids = sorted(c["message_id"] for c in app.cards())
    assert sorted(int(u.rsplit("/", 1)[1]) for u in links) == card_ids
    assert all(u.startswith("https://t.me/c/1000000001/") for u in links)


async def test_start_in_private_chat(app: Harness) -> None:
    app.em.add_chat(ALICE["id"], type="private", title="Alice")
    answer = await say(app, ALICE, "/start", chat=ALICE["id"])
    assert "opsgate" in answer["text"].lower()


# ------------------------------------------------------------------ silences over time


async def test_silence_expiry_is_announced_once_and_card_updated(
    start_app: AppFactory, tmp_path: Path
) -> None:
    app = await start_app(approval_timeout="2s")  # also makes the timer tick every 0.5 s
    await app.alert("single-firing.json")
    await app.settled()
    await say(app, ALICE, "/silence namespace=payments 1h")
    await app.settled()
    # Time passes: the silence ended a minute ago.
    change(app.db_target, "UPDATE silences SET ends_at = ?",
           ((datetime.now(UTC) - timedelta(minutes=1)).isoformat(),))
    note = await wait_for(lambda: [m for m in app.bot_messages() if "ended" in m["text"]], 15)
    await app.settled()
    assert len(note) == 1
    (card,) = app.cards()
    assert "silenced until" not in card["text"].lower()


async def test_silence_survives_restart(start_app: AppFactory) -> None:
    first = await start_app()
    await say(first, ALICE, "/silence alertname=LabDiskFull 2h")
    await first.settled()
    await first.app.stop()
    second = await start_app()
    status, body = await second.post("/alerts/alertmanager", fixture("two-alerts-firing.json"))
    assert status == 200 and body["silenced"] == body["opened"]
    await second.settled()
    assert second.cards() == []


# ------------------------------------------------------------------ Alertmanager sync


async def test_alertmanager_sync_create_list_expire(start_app: AppFactory) -> None:
    am = await start_am_standin()
    try:
        app = await start_app(alertmanager_url=am.url)
        answer = await say(app, ALICE, "/silence service=api 2h rolling deploy")
        sid = re.search(r"S-[0-9A-F]{6}", answer["text"]).group(0)
        assert "unreachable" not in answer["text"].lower()
        (remote,) = am.silences.values()
        assert remote["createdBy"] == "@alice" and remote["comment"] == "rolling deploy"
        assert remote["matchers"][0]["name"] == "service"
        # One made in Alertmanager directly shows up too.
        from bot.models import Matcher
        from bot.silences.alertmanager import AlertmanagerSilences

        now = datetime.now(UTC)
        await AlertmanagerSilences(am.url).create([Matcher(name="job", value="node")], now,
                                                  now + timedelta(hours=1), "grafana", "disk")
        listing = await say(app, ALICE, "/silences")
        assert "job" in listing["text"] and "Alertmanager" in listing["text"]
        await say(app, ALICE, f"/unsilence {sid}")
        assert [s["status"]["state"] for s in am.silences.values()
                if s["createdBy"] == "@alice"] == ["expired"]
    finally:
        await am.close()


async def test_alertmanager_unreachable_keeps_local_silence(start_app: AppFactory) -> None:
    app = await start_app(alertmanager_url="http://127.0.0.1:9")
    answer = await say(app, ALICE, "/silence service=api 1h")
    assert "unreachable" in answer["text"].lower()
    async with app.db.read() as conn:
        assert len(await repo.active_silences(conn, datetime.now(UTC))) == 1


# ------------------------------------------------------------------ routing


ROUTES = """
[[route]]
name = "payments team"
match = {{ namespace = "payments" }}
chat_id = {other}
approvers = [222]
continue = true

[[route]]
name = "storage to its topic"
match = {{ namespace = "ops" }}
chat_id = {forum}
topic = {topic}

[[route]]
name = "everything else"
chat_id = {main}
"""


async def test_routing_two_chats_topic_and_continue(
    start_app: AppFactory, emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.emulator.add_chat(OTHER_CHAT, title="Payments", admins=[BOB])
    emu.emulator.add_chat(FORUM, title="Storage", is_forum=True)
    topic = emu.emulator.add_topic(FORUM, "storage alerts")
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.format(other=OTHER_CHAT, forum=FORUM, topic=topic, main=CHAT))
    app = await start_app(routes_path=str(routes))
    await app.alert("single-firing.json")  # namespace payments: other chat + (continue) main
    await app.alert("two-alerts-firing.json")  # namespace ops: forum topic
    await app.alert("crashloop-firing.json")  # namespace shop: main
    await app.settled()
    other = [m for m in app.em.messages(OTHER_CHAT) if is_card(m)]
    main = app.cards(CHAT)
    forum = [m for m in app.em.messages(FORUM) if is_card(m)]
    assert [("LabHighErrorRate" in m["text"]) for m in other] == [True]
    assert sorted("LabHighErrorRate" in m["text"] for m in main) == [False, True]
    assert len(forum) == 1 and forum[0]["message_thread_id"] == topic
    # Approvers are those of the route's chat: Alice may not approve in the payments chat.
    card = other[0]
    data = next(b["callback_data"] for row in card["reply_markup"]["inline_keyboard"]
                for b in row if "Details" in b["text"])
    assert data
    approve = next(b["callback_data"] for row in card["reply_markup"]["inline_keyboard"]
                   for b in row if "Reject" in b["text"])
    qid = app.em.press_button(OTHER_CHAT, card["message_id"], approve, ALICE)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    assert app.em.callback_answer(qid)["show_alert"] is True
    qid = app.em.press_button(OTHER_CHAT, card["message_id"], approve, BOB)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    await app.settled()
    assert "Rejected by @bob" in app.em.message(OTHER_CHAT, card["message_id"])["text"]
    # The same incident's card in the main chat shows it too (one incident, two cards).
    main_card = next(m for m in app.cards(CHAT) if "LabHighErrorRate" in m["text"])
    assert "Rejected by @bob" in main_card["text"]


# ------------------------------------------------------------------ topics


async def test_topic_mode_lifecycle(start_app: AppFactory, emu: RunningEmulator) -> None:
    emu.emulator.add_chat(FORUM, title="Incidents", is_forum=True, admins=[ALICE, BOB],
                          bot_rights={"can_manage_topics": True})
    app = await start_app(chat=FORUM, thread_mode="topic")
    await app.alert("single-firing.json")
    await app.settled()
    (topic,) = app.em.topics(FORUM)
    assert "LabHighErrorRate" in topic["name"] and not topic["closed"]
    (card,) = app.cards()
    assert card["message_thread_id"] == topic["id"]
    await app.press(card["message_id"], "Details", ALICE)
    await app.alert("single-resolved.json")
    await app.settled()
    for reply in app.replies_to(card["message_id"]):
        assert reply["message_thread_id"] == topic["id"]
    (topic,) = app.em.topics(FORUM)
    assert topic["closed"] and topic["name"].startswith("✅")
    # The group fires again: the topic reopens with a new card in it.
    payload = fixture("single-firing.json")
    payload["alerts"][0]["startsAt"] = "2026-11-27T16:00:00Z"
    await app.post("/alerts/alertmanager", payload)
    await app.settled()
    (topic,) = app.em.topics(FORUM)
    assert not topic["closed"]
    cards = app.cards()
    assert len(cards) == 2 and all(c["message_thread_id"] == topic["id"] for c in cards)


async def test_topic_mode_without_right_falls_back(
    start_app: AppFactory, emu: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.emulator.add_chat(FORUM, title="Incidents", is_forum=True, admins=[ALICE, BOB],
                          bot_rights={"can_manage_topics": False})
    with caplog.at_level(logging.WARNING):
        app = await start_app(chat=FORUM, thread_mode="topic")
    assert any("can_manage_topics" in r.message and str(FORUM) in r.message
               for r in caplog.records)
    await app.alert("single-firing.json")
    await app.settled()
    assert app.em.topics(FORUM) == []
    (card,) = app.cards()
    assert "message_thread_id" not in card or card["message_thread_id"] is None


# ------------------------------------------------------------------ migration


async def test_group_upgraded_to_supergroup(start_app: AppFactory, emu: RunningEmulator) -> None:
    emu.emulator.add_chat(BASIC_GROUP, type="group", title="Old group", admins=[ALICE, BOB],
                          bot_status="administrator")
    app = await start_app(chat=BASIC_GROUP)
    await app.alert("crashloop-firing.json")
    await app.settled()
    new_id = -1009999999999
    emu.emulator.migrate_chat(BASIC_GROUP, new_id)
    # A write that was pending goes to the new id; the open card is posted there again.
    await app.alert("single-firing.json")
    await wait_for(lambda: len([m for m in emu.emulator.messages(new_id) if is_card(m)]) == 2,
                   20)
    await app.settled()
    notes = [m for m in emu.emulator.messages(new_id)
             if m["from"]["is_bot"] and str(new_id) in m["text"]]
    assert len(notes) == 1
    # Buttons work in the new chat, and a config still naming the old id keeps working.
    card = next(m for m in emu.emulator.messages(new_id)
                if is_card(m) and "LabPodCrashLooping" in m["text"])
    approve = next(b["callback_data"] for row in card["reply_markup"]["inline_keyboard"]
                   for b in row if "Approve" in b["text"])
    qid = emu.emulator.press_button(new_id, card["message_id"], approve, ALICE)
    await wait_for(lambda: emu.emulator.callback_answer(qid), 15)
    await app.settled()
    await app.app.stop()
    again = await start_app(chat=BASIC_GROUP)
    await again.alert("two-alerts-firing.json")
    await again.settled()
    assert any("LabDiskFull" in m["text"] for m in emu.emulator.messages(new_id) if is_card(m))
    async with again.db.read() as conn:
        inc = next(i for i in await repo.open_incidents(conn) if i.alertname.endswith("Crash"
                   "Looping"))
        assert (await repo.current_decision(conn, inc.id)).state is DecisionState.SUCCEEDED


# ------------------------------------------------------------------ language


async def test_zh_tw_card_thread_and_command(start_app: AppFactory) -> None:
    app = await start_app(locale="zh-TW", timezone="Asia/Taipei")
    await app.alert("single-firing.json")
    await app.settled()
    (card,) = app.cards()
    assert has_cjk(card["text"]) and "Awaiting approval" not in card["text"]
    assert "21:07" in card["text"]  # 13:07 UTC in Asia/Taipei
    await app.alert("single-resolved.json")
    await app.settled()
    replies = app.replies_to(card["message_id"])
    assert replies and all(has_cjk(r["text"]) for r in replies)
    answer = await say(app, ALICE, "/help")
    assert has_cjk(answer["text"])
    for message in [app.em.message(CHAT, card["message_id"]), *replies, answer]:
        parsed = check_message_text(message["html"])
        assert len(parsed.text) <= 4096


@pytest.mark.parametrize("user", [ALICE, MALLORY], ids=["approver", "non-approver"])
@pytest.mark.parametrize("suffix", ["", f"@{BOTNAME}"], ids=["bare", "botname"])
@pytest.mark.parametrize(
    "command", ["/help", "/silences", "/history", "/incidents", "/whoami",
                "/silence service=api 1h", "/unsilence S-ABCDEF"],
)
async def test_every_command_answers(app: Harness, command: str, suffix: str, user: dict
                                     ) -> None:
    name, _, rest = command.partition(" ")
    answer = await say(app, user, f"{name}{suffix} {rest}".strip())
    check_message_text(answer["html"])
    if user is MALLORY and name in ("/silence", "/unsilence"):
        assert "only approvers" in answer["text"].lower()
    else:
        assert "only approvers" not in answer["text"].lower()
