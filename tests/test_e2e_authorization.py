"""Who may do what, where: every card button and command, pressed or sent by an approver of
this chat, an approver of the other chat only, and a non-approver, against this chat's own
incident, the other chat's incident, forged ids, garbage and oversized ids. The real app over
HTTP to the emulator, with ROUTES_PATH sending namespace shop to chat A and payments to B.

Each refused case must change nothing (incidents, decisions, approvals, silences) and leave
an audit row saying why; the allowed cases run last, since they change the incident."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from am_standin import StandIn
from harness import (
    ALICE,
    BOB,
    CHAT,
    MALLORY,
    AppFactory,
    Harness,
    fixture,
    now,
    routes_into_two_chats,
)
from pg import query

from bot.models import Evidence, Matcher, RelatedItem
from bot.silences.alertmanager import AlertmanagerSilences
from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator
from storage import repo

CHAT_A = CHAT  # namespace shop, approver Alice (also TELEGRAM_CHAT_ID, the default route)
CHAT_B = -1001000000009  # namespace payments, approver Bob
ROUTES = f"""
[[route]]
name = "shop"
match = {{ namespace = "shop" }}
chat_id = {CHAT_A}
approvers = [{ALICE["id"]}]

[[route]]
name = "payments"
match = {{ namespace = "payments" }}
chat_id = {CHAT_B}
approvers = [{BOB["id"]}]
"""
USERS = {"approver here": ALICE, "approver elsewhere only": BOB, "non-approver": MALLORY}
ACTS = {"a": "approve", "r": "reject", "z": "reanalyze", "s": "silence", "p": "save_playbook",
        "d": "details", "h": "history", "k": "ack", "u": "unack"}
MUTATING = {"a", "r", "z", "s", "p"}  # approvers only
OPEN = {"k", "u"}  # members may press; the ack service decides, once the press is bound
HUGE = "99999999999999999999"  # beyond SQLite's signed 64-bit INTEGER
TABLES = ("incidents", "decisions", "approvals", "silences", "chat_migrations")


@dataclass
class World:
    h: Harness
    inc_a: str
    dec_a: int
    card_a: int
    inc_b: str
    dec_b: int
    card_b: int
    db_path: str  # the app's database (pg.query reads either backend)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return {t: sorted(query(self.db_path, f"SELECT * FROM {t}"), key=repr) for t in TABLES}

    async def press(self, chat: int, message_id: int, data: str,
                    user: dict[str, Any]) -> dict[str, Any]:
        qid = self.h.em.press_button(chat, message_id, data, user, force=True)
        answer = await wait_for(lambda: self.h.em.callback_answer(qid), 15,
                                message=f"press {data!r} not answered")
        await self.h.settled()
        return answer

    async def say(self, chat: int, user: dict[str, Any], text: str) -> str:
        return str((await self.reply(chat, user, text))["text"])

    async def reply(self, chat: int, user: dict[str, Any], text: str) -> dict[str, Any]:
        """Send a command; the bot's reply to it."""
        sent = self.h.em.user_sends(chat, user, text)
        reply = await wait_for(
            lambda: next((m for m in self.h.em.messages(chat)
                          if (m.get("reply_to_message") or {}).get("message_id")
                          == sent["message_id"]), None),
            15, message=f"no answer to {text!r}")
        await self.h.settled()
        return dict(reply)

    async def audit_since(self, before: int) -> list[tuple[str, str, int | None]]:
        rows = await self.h.audit()
        return [(r["action"], r["result"], r["user_id"]) for r in rows[before:]]


async def card_in(h: Harness, chat: int, inc: str) -> dict[str, Any]:
    return await wait_for(lambda: next((m for m in h.cards(chat) if inc in m["text"]
                                        and "Awaiting approval" in m["text"]), None), 15,
                          message=f"no pending card of {inc} in {chat}")


async def two_chats(start_app: AppFactory, emu: RunningEmulator, tmp_path: Path,
                    routes_toml: str, **overrides: Any) -> Harness:
    """The app with chat B added and ROUTES_PATH set; Alice is APPROVER_IDS (chat A)."""
    emu.emulator.add_chat(CHAT_B, title="Payments", admins=[BOB])
    routes = tmp_path / "routes.toml"
    routes.write_text(routes_toml)
    return await start_app(routes_path=str(routes), approver_ids=[ALICE["id"]], **overrides)


@pytest.fixture
async def world(start_app: AppFactory, emu: RunningEmulator, tmp_path: Path) -> World:
    h = await two_chats(start_app, emu, tmp_path, ROUTES)
    inc_a = (await h.alert("crashloop-firing.json"))["opened"][0]
    inc_b = (await h.alert("single-firing.json"))["opened"][0]
    await h.settled()
    card_a, card_b = await card_in(h, CHAT_A, inc_a), await card_in(h, CHAT_B, inc_b)
    assert not [m for m in h.cards(CHAT_B) if inc_a in m["text"]]
    assert not [m for m in h.cards(CHAT_A) if inc_b in m["text"]]
    return World(h, inc_a, (await h.decision(inc_a)).id, card_a["message_id"], inc_b,
                 (await h.decision(inc_b)).id, card_b["message_id"], h.db_target)


def refusal_of(act: str, target: str, role: str) -> str:
    """The audit result a press must get, from the rules (not read back from the code)."""
    if target in ("garbage", "oversized ids"):
        return "ignored"  # an unknown button: no factory parses it, nothing is looked up
    if target == "another chat's incident":
        return "wrong_message"  # the pressed card is not that incident's
    if target == "forged incident id":
        return "wrong_message"
    if act in MUTATING and role != "approver here":
        return "not_allowed"
    # target == "forged decision id" by an approver here, or a read-only press by anyone
    return {"a": "stale_card", "r": "stale_card", "z": "stale_card", "s": "silence",
            "p": "unknown_incident", "d": "details", "h": "history", "k": "ack",
            "u": "unack"}[act]


def press_of(w: World, act: str, target: str) -> tuple[int, int, str]:
    """Where the press is made (chat, message) and its callback data."""
    own = f"c1:{act}:{w.inc_a}:{w.dec_a}"
    return {
        "own incident": (CHAT_A, w.card_a, own),
        "another chat's incident": (CHAT_B, w.card_b, own),
        "forged incident id": (CHAT_A, w.card_a, f"c1:{act}:INC-ZZZZZZ:{w.dec_a}"),
        "forged decision id": (CHAT_A, w.card_a, f"c1:{act}:{w.inc_a}:{w.dec_b + 1000}"),
        "garbage": (CHAT_A, w.card_a, f"c1:{act}:{w.inc_a}:1;DROP TABLE audit"),
        "oversized ids": (CHAT_A, w.card_a, f"c1:{act}:{w.inc_a}:{HUGE}"),
    }[target]


TARGETS = ["another chat's incident", "forged incident id", "forged decision id", "garbage",
           "oversized ids", "own incident"]


async def test_every_button_for_every_person_and_target(world: World) -> None:
    w = world
    allowed_later: list[tuple[str, str, str]] = []
    for act in ACTS:
        for role, user in USERS.items():
            for target in TARGETS:
                expected = refusal_of(act, target, role)
                if target == "own incident" and expected not in ("not_allowed",):
                    allowed_later.append((act, role, target))
                    continue
                if target == "forged decision id" and act in ("s", "d", "h", "k", "u"):
                    continue  # these name no decision: the own-incident case covers them
                chat, message_id, data = press_of(w, act, target)
                before, audited = w.snapshot(), len(await w.h.audit())
                answer = await w.press(chat, message_id, data, user)
                case = f"{ACTS[act]} by {role} on {target}"
                assert answer.get("show_alert") is True, case
                assert w.snapshot() == before, case
                rows = await w.audit_since(audited)
                assert [r for _, r, _ in rows] == [expected], (case, rows)
                assert rows[0][2] == user["id"], case
    # Read-only presses by anyone here change nothing but answer in chat A's thread.
    for act, role, _ in allowed_later:
        if act in MUTATING | OPEN:
            continue
        before = w.snapshot()
        chat, message_id, data = press_of(w, act, "own incident")
        answer = await w.press(chat, message_id, data, USERS[role])
        assert answer["text"] == "Working…", (act, role)
        assert w.snapshot() == before, (act, role)
    assert not [m for m in w.h.em.messages(CHAT_B) if w.inc_a in m.get("text", "")]
    # Changes only by Alice, on her own chat's card.
    answer = await w.press(CHAT_A, w.card_a, f"c1:a:{w.inc_a}:{w.dec_a}", ALICE)
    assert answer["text"] == "Approved — executing"
    answer = await w.press(CHAT_A, w.card_a, f"c1:s:{w.inc_a}:{w.dec_a}", ALICE)
    assert "Silenced" in answer["text"]
    assert len(w.snapshot()["silences"]) == 1


async def test_commands_see_and_change_only_their_chat(world: World) -> None:
    w = world
    # Listing: each chat sees its own incidents only, whoever asks.
    for user in USERS.values():
        in_b = await w.say(CHAT_B, user, "/incidents")
        assert w.inc_b in in_b and w.inc_a not in in_b
        assert w.inc_a not in await w.say(CHAT_B, user, "/history")
        assert "No incidents found" in await w.say(CHAT_B, user, f"/history {w.inc_a}")
        in_a = await w.say(CHAT_A, user, "/incidents")
        assert w.inc_a in in_a and w.inc_b not in in_a
    # Silencing another chat's incident from here: refused for everyone, audited.
    for role, user in USERS.items():
        before, audited = w.snapshot(), len(await w.h.audit())
        await w.say(CHAT_B, user, f"/silence {w.inc_a} 1h")
        assert w.snapshot() == before, role
        expected = "unknown_incident" if user is BOB else "not_allowed"
        assert [r for _, r, _ in await w.audit_since(audited)] == [expected], role
    # Oversized and garbage arguments: a usage answer, nothing written.
    for text in (f"/silence {w.inc_b} {HUGE}h", f"/silence namespace=shop {HUGE}d",
                 f"/unsilence S-{HUGE}", f"/history cart {HUGE}", "/silence \x00=\x00 1h",
                 f"/silence {w.inc_b[:4]}{'9' * 30} 1h"):
        before = w.snapshot()
        answer = await w.say(CHAT_B, BOB, text)
        assert w.snapshot() == before, text
        assert "/" in answer, text  # the usage line
    # A silence Bob makes in B by labels gets B's route label: A's incident stays loud.
    await w.say(CHAT_B, BOB, "/silence alertname=LabPodCrashLooping 1h")
    ((matchers,),) = query(w.db_path, "SELECT matchers FROM silences")
    ((silenced,),) = query(w.db_path, "SELECT silence_id FROM cards WHERE incident_id = ?",
                           (w.inc_a,))
    assert '"payments"' in matchers and silenced is None
    # In A, Alice approves the shop route and the catch-all default route, while payments go
    # to B: no label set says "A's alerts", so she silences one incident instead.
    before, audited = w.snapshot(), len(await w.h.audit())
    assert "one incident" in await w.say(CHAT_A, ALICE, "/silence alertname=LabHighErrorRate 1h")
    assert w.snapshot() == before
    assert [r for _, r, _ in await w.audit_since(audited)] == ["ambiguous_scope"]
    # A silence made in A cannot be expired from B by B's approver (not an approver in A).
    await w.say(CHAT_A, ALICE, f"/silence {w.inc_a} 1h")
    ((sid,),) = query(w.db_path, "SELECT id FROM silences WHERE chat_id = ?", (CHAT_A,))
    listing = await w.reply(CHAT_B, BOB, "/silences")
    assert sid not in listing["text"]
    # Nor with an Expire button forged onto B's own silence list (the list has no such button).
    before, audited = w.snapshot(), len(await w.h.audit())
    answer = await w.press(CHAT_B, listing["message_id"], f"s1:x:{sid}", BOB)
    assert answer.get("show_alert") is True and w.snapshot() == before
    assert [r for _, r, _ in await w.audit_since(audited)] == ["wrong_message"]
    for role, user in USERS.items():
        before, audited = w.snapshot(), len(await w.h.audit())
        await w.say(CHAT_B, user, f"/unsilence {sid}")
        assert w.snapshot() == before, role
        assert [r for _, r, _ in await w.audit_since(audited)] == ["not_allowed"], role
    # Its approver may, from its own chat.
    assert "expired" in (await w.say(CHAT_A, ALICE, f"/unsilence {sid}")).lower()


# -- silenced is a property of an incident in a chat -----------------------------------------

SHARED_ROUTES = routes_into_two_chats("payments", CHAT_A, CHAT_B)


def silence_marks(db_path: str, inc: str) -> dict[int, str | None]:
    return dict(query(db_path, "SELECT chat_id, silence_id FROM cards WHERE incident_id = ?",
                      (inc,)))


def silence_ids(db_path: str, chat: int) -> list[str]:
    """The chat's silences, oldest first."""
    return [r[0] for r in query(
        db_path, "SELECT id FROM silences WHERE chat_id = ? ORDER BY starts_at, id", (chat,))]


@pytest.fixture
async def shared(start_app: AppFactory, emu: RunningEmulator, tmp_path: Path) -> World:
    """One incident (namespace payments) with a card in chat A (Alice) and in B (Bob)."""
    h = await two_chats(start_app, emu, tmp_path, SHARED_ROUTES)
    inc = (await h.alert("single-firing.json"))["opened"][0]
    await h.settled()
    card_a, card_b = await card_in(h, CHAT_A, inc), await card_in(h, CHAT_B, inc)
    dec = (await h.decision(inc)).id
    return World(h, inc, dec, card_a["message_id"], inc, dec, card_b["message_id"],
                 h.db_target)


def card_text(w: World, chat: int) -> str:
    return str(w.h.em.message(chat, w.card_a if chat == CHAT_A else w.card_b)["text"])


async def test_a_silence_quiets_an_incident_only_in_the_chat_it_was_made_in(
        shared: World) -> None:
    w, inc = shared, shared.inc_a
    # Bob silences it from B's card: B's card says so, A's does not, and A's card still
    # offers Silence.
    answer = await w.press(CHAT_B, w.card_b, f"c1:s:{inc}:{w.dec_a}", BOB)
    assert "Silenced" in answer["text"]
    (s_b,) = silence_ids(w.db_path, CHAT_B)
    assert silence_marks(w.db_path, inc) == {CHAT_A: None, CHAT_B: s_b}
    assert "silenced until" in card_text(w, CHAT_B).lower()
    assert "silenced until" not in card_text(w, CHAT_A).lower()
    assert f"c1:s:{inc}:" in str(w.h.em.message(CHAT_A, w.card_a)["reply_markup"])
    # A re-delivery changes nothing of that.
    await w.h.alert("single-firing.json")
    await w.h.settled()
    assert silence_marks(w.db_path, inc) == {CHAT_A: None, CHAT_B: s_b}
    # Two silences in A over the one incident: the end of one leaves it quiet under the other.
    await w.press(CHAT_A, w.card_a, f"c1:s:{inc}:{w.dec_a}", ALICE)
    assert "created" in await w.say(CHAT_A, ALICE, f"/silence {inc} 3h second")
    first, second = silence_ids(w.db_path, CHAT_A)
    assert silence_marks(w.db_path, inc) == {CHAT_A: first, CHAT_B: s_b}
    assert "expired" in (await w.say(CHAT_A, ALICE, f"/unsilence {first}")).lower()
    assert silence_marks(w.db_path, inc) == {CHAT_A: second, CHAT_B: s_b}
    assert "silenced until" in card_text(w, CHAT_A).lower()
    # Bob may not end A's silence from B; ending his own leaves A's quiet.
    before, audited = w.snapshot(), len(await w.h.audit())
    await w.say(CHAT_B, BOB, f"/unsilence {second}")
    assert w.snapshot() == before
    assert [r for _, r, _ in await w.audit_since(audited)] == ["not_allowed"]
    assert "expired" in (await w.say(CHAT_B, BOB, f"/unsilence {s_b}")).lower()
    assert silence_marks(w.db_path, inc) == {CHAT_A: second, CHAT_B: None}
    assert "silenced until" not in card_text(w, CHAT_B).lower()
    assert "silenced until" in card_text(w, CHAT_A).lower()
    # Each chat lists its own silences only.
    listed_b = await w.say(CHAT_B, BOB, "/silences")
    assert second not in listed_b
    assert second in await w.say(CHAT_A, ALICE, "/silences")


async def test_a_new_incident_is_posted_where_no_silence_of_that_chat_covers_it(
        shared: World) -> None:
    w, inc = shared, shared.inc_a
    await w.press(CHAT_B, w.card_b, f"c1:s:{inc}:{w.dec_a}", BOB)
    (s_b,) = silence_ids(w.db_path, CHAT_B)
    await w.h.alert("single-resolved.json")
    await w.h.settled()
    # The same alert fires again, a new episode: B's silence still covers it, in B only.
    body = fixture("single-firing.json")
    for alert in body["alerts"]:
        alert["startsAt"] = "2026-11-27T15:00:00Z"
    status, result = await w.h.post("/alerts/alertmanager", body)
    assert status == 200 and result["silenced"] == []
    (again,) = result["opened"]
    await w.h.settled()
    assert silence_marks(w.db_path, again) == {CHAT_A: None, CHAT_B: s_b}
    await card_in(w.h, CHAT_A, again)
    assert not [m for m in w.h.cards(CHAT_B) if again in m["text"]]
    assert not [m for m in w.h.em.messages(CHAT_B) if again in m.get("text", "")]
    # Expired, it is posted in B too, with its decision.
    await w.say(CHAT_B, BOB, f"/unsilence {s_b}")
    await card_in(w.h, CHAT_B, again)
    assert silence_marks(w.db_path, again) == {CHAT_A: None, CHAT_B: None}


async def synced(start_app: AppFactory, emu: RunningEmulator, tmp_path: Path,
                 routes_toml: str, am: StandIn) -> World:
    """Two chats and Alertmanager sync; the World's incidents are filled in by the test."""
    h = await two_chats(start_app, emu, tmp_path, routes_toml, alertmanager_url=am.url)
    return World(h, "", 0, 0, "", 0, 0, h.db_target)


async def test_alertmanager_only_silences_are_listed_in_the_chat_they_concern(
        start_app: AppFactory, emu: RunningEmulator, tmp_path: Path, am: StandIn) -> None:
    w = await synced(start_app, emu, tmp_path, ROUTES, am)
    client = AlertmanagerSilences(am.url)
    start, end = now(), now() + timedelta(hours=2)
    made = {
        "payments-only": [Matcher(name="namespace", value="payments"),
                          Matcher(name="alertname", value="X")],
        "shop-only": [Matcher(name="namespace", value="shop")],
        "every-namespace": [Matcher(name="alertname", value="X")],
        "payments-ish": [Matcher(name="namespace", value="pay.*", is_regex=True)],
    }
    for comment, matchers in made.items():
        await client.create(matchers, start, end, "amtool", comment)
    in_a = await w.say(CHAT_A, ALICE, "/silences")
    in_b = await w.say(CHAT_B, BOB, "/silences")
    # A pins its route's label to its value: listed there; wider ones belong to no chat.
    assert "payments-only" in in_b and "payments-only" not in in_a
    assert "shop-only" in in_a and "shop-only" not in in_b
    for wide in ("every-namespace", "payments-ish"):
        assert wide not in in_a and wide not in in_b


async def test_details_name_no_other_chats_incidents(world: World) -> None:
    """Related (from the knowledge index, which spans every chat) is cut to this chat."""
    w = world
    related = [RelatedItem(kind="incident", ref=w.inc_b, title="payments secret",
                           similarity=0.9),
               RelatedItem(kind="incident", ref=w.inc_a, title="shop own", similarity=0.8),
               RelatedItem(kind="runbook", ref="crash.md#restart", title="Runbook restart",
                           similarity=0.7)]
    async with w.h.db.write() as conn:
        decision = await repo.current_decision(conn, w.inc_a)
        assert decision is not None and decision.proposal is not None
        proposal = decision.proposal.model_copy(update={"evidence": Evidence(related=related)})
        await conn.execute("UPDATE decisions SET proposal = ? WHERE id = ?",
                           (proposal.model_dump_json(), decision.id))
    await w.press(CHAT_A, w.card_a, f"c1:d:{w.inc_a}:{w.dec_a}", ALICE)
    texts = " ".join(m.get("text", "") for m in w.h.em.messages(CHAT_A))
    assert "Runbook restart" in texts and "shop own" in texts
    assert w.inc_b not in texts and "payments secret" not in texts


async def test_alertmanager_gets_a_chat_silence_only_when_its_alerts_stay_in_that_chat(
        start_app: AppFactory, emu: RunningEmulator, tmp_path: Path, am: StandIn) -> None:
    """Alertmanager's copy of a silence mutes those alerts for every receiver, opsgate's
    webhook included: a silence over alerts that also go to another chat stays in opsgate."""
    w = await synced(start_app, emu, tmp_path, SHARED_ROUTES, am)
    inc = (await w.h.alert("single-firing.json"))["opened"][0]
    await w.h.settled()
    card_b = (await card_in(w.h, CHAT_B, inc))["message_id"]
    answer = await w.press(CHAT_B, card_b, f"c1:s:{inc}:{(await w.h.decision(inc)).id}", BOB)
    assert "Silenced" in answer["text"]
    assert "also go to another chat" in await w.say(CHAT_B, BOB, f"/silence {inc} 2h")
    assert am.silences == {}
    assert len(silence_ids(w.db_path, CHAT_B)) == 2


async def test_alertmanager_gets_a_silence_whose_alerts_only_this_chat_sees(
        start_app: AppFactory, emu: RunningEmulator, tmp_path: Path, am: StandIn) -> None:
    w = await synced(start_app, emu, tmp_path, ROUTES, am)
    assert "Also set in Alertmanager" in await w.say(
        CHAT_B, BOB, "/silence alertname=LabHighErrorRate 1h")
    (copy,) = am.silences.values()
    assert {"name": "namespace", "value": "payments", "isRegex": False,
            "isEqual": True} in copy["matchers"]
