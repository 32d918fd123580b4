"""The handler tier: updates fed through the real Dispatcher (`feed_raw_update`), the real
services on a real SQLite file, and a session with no network whose answers still pass
aiogram's response check. Each handler is reached by the update that is meant for it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from factories import T0, UTC_TZ, make_incident
from handler_session import RecordingSession, Request

from bot.alerts.routing import RouteTable, default_route
from bot.app import build_dispatcher
from bot.cards.notes import Voice
from bot.chat.answers import Console
from bot.chat.authorization import IncidentAccess
from bot.chat.card_buttons import Inquiries
from bot.incidents.acks import AckService
from bot.incidents.approvals import ApprovalConfig, ApprovalService, Authorizer
from bot.incidents.stale_press import StalePressRule
from bot.models import Action, Actor, DecisionState, Matcher, Proposal, Risk, Verb
from bot.silences.service import SilenceService
from bot.telegram.chat_migration import ChatMigrator
from handlers.routers import make_routers
from storage import outbox, repo, transitions
from storage.db import Database
from storage.state import build_state

CHAT = -1001234567890
UNSERVED = -1005555555555
User = dict[str, Any]
ALICE: User = {"id": 111, "is_bot": False, "first_name": "Alice", "username": "alice"}
MALLORY: User = {"id": 666, "is_bot": False, "first_name": "Mallory", "username": "mallory"}
BOT_USER: User = {"id": 42, "is_bot": True, "first_name": "opsgate", "username": "opsgate_bot"}
CAROL: User = {"id": 333, "is_bot": False, "first_name": "Carol", "username": "carol"}
MEMBERS = {CAROL["id"]}  # in CHAT, not an approver
INC = "INC-7K3F9Q"
CARD_MESSAGE = 100
_ids = itertools.count(1)


@dataclass
class Tier:
    dp: Dispatcher
    bot: Bot
    session: RecordingSession
    db: Database
    decision_id: int

    def _message(self, chat: int, message_id: int, **extra: Any) -> dict[str, Any]:
        return {"message_id": message_id, "date": int(T0.timestamp()),
                "chat": {"id": chat, "type": "supergroup", "title": "On-call"}, **extra}

    async def press(self, data: str, user: dict[str, Any] = ALICE, *, chat: int = CHAT,
                    message_id: int = CARD_MESSAGE, age: timedelta = timedelta(0),
                    forged: bool = False) -> Request:
        """Press a button; the one answerCallbackQuery the handler made. Telegram's copy of
        the pressed message carries that button, unless the data was forged by a client."""
        self.session.take()
        shown = "c1:d:INC-7K3F9Q:0" if forged else data
        message = self._message(chat, message_id, **{
            "from": BOT_USER, "text": "card",
            "reply_markup": {"inline_keyboard": [[{"text": "b", "callback_data": shown}]]}})
        update = {"update_id": next(_ids), "callback_query": {
            "id": f"q{next(_ids)}", "from": user, "chat_instance": "ci", "data": data,
            "message": message,
        }}
        # update_age: what the inbox worker passes (how long the press may have waited).
        await self.dp.feed_raw_update(self.bot, update, update_age=age)
        answers = [r for r in self.session.take() if r.method == "answerCallbackQuery"]
        assert len(answers) == 1, answers
        return answers[0]

    async def say(self, text: str, user: dict[str, Any] = ALICE, *, chat: int = CHAT,
                  reply_to: int | None = None, **extra: Any) -> None:
        message = self._message(chat, next(_ids) + 1000, **{"from": user, **extra})
        if text:
            message["text"] = text
        if reply_to is not None:
            message["reply_to_message"] = self._message(
                chat, reply_to, **{"from": BOT_USER, "text": "card"})
        await self.dp.feed_raw_update(self.bot, {"update_id": next(_ids), "message": message})
        # Handlers write to Telegram only through the outbox.
        assert self.session.take() == []

    async def sent_list(self, message_id: int) -> None:
        """A command's answer the bot sent in CHAT as this message (e.g. a paged list)."""
        async with self.db.write() as conn:
            row = await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=CHAT, now=T0,
                                       payload={"text": "list"})
            assert row is not None
            await outbox.mark_done(conn, row, message_id)

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.db.read() as conn:
            async with conn.execute(sql, args) as cur:
                return [tuple(r) for r in await cur.fetchall()]

    async def audit(self) -> list[tuple[str, str, int | None]]:
        return [(a, r, u) for a, r, u in await self.rows(
            "SELECT action, result, user_id FROM audit ORDER BY id")]

    async def outbox(self) -> list[tuple[str, int]]:
        """What the handlers queued (not what was sent before)."""
        return [(k, c) for k, c in await self.rows(
            "SELECT kind, chat_id FROM outbox WHERE state != 'done' ORDER BY id")]

    async def state(self) -> DecisionState:
        async with self.db.read() as conn:
            decision = await repo.get_decision(conn, self.decision_id)
        assert decision is not None
        return decision.state


def card_data(act: str, dec: int | str) -> str:
    return f"c1:{act}:{INC}:{dec}"


async def seed(db: Database) -> int:
    """One firing incident with a pending proposal, and its card in CHAT."""
    proposal = Proposal(
        action=Action(verb=Verb.ROLLOUT_RESTART, target_name="cart", namespace="shop"),
        risk=Risk.MEDIUM, summary="restart", reasoning="r",
    )
    async with db.write() as conn:
        await repo.insert_incident(conn, make_incident(chat_id=CHAT,
                                                       group_labels={"alertname": "Crash"}))
        decision_id = await repo.insert_decision(conn, INC, T0)
        await transitions.compare_and_set(conn, decision_id, [DecisionState.ANALYZING],
                                          DecisionState.PENDING, T0, proposal=proposal,
                                          required_approvals=1)
        await repo.save_card(conn, INC, CHAT, message_id=CARD_MESSAGE, thread_id=None,
                             rendered_hash="h")
    return decision_id


def dispatcher(db: Database, *, reverse: bool = False) -> Dispatcher:
    state = build_state("")
    clock = lambda: T0  # noqa: E731
    routes = RouteTable(routes=[], default=default_route(CHAT, [ALICE["id"]]))
    authz = Authorizer(routes.approvers_for, state)
    silences = SilenceService(db, clock, "en", "UTC")
    access = IncidentAccess(db, routes, authz, clock)
    approvals = ApprovalService(
        db, state, ApprovalConfig("en", "UTC", timedelta(minutes=5)), clock, silences)

    async def is_member(chat_id: int, user_id: int) -> bool:
        return chat_id == CHAT and user_id in MEMBERS

    acks = AckService(db, clock, Voice("en", "UTC"), access.may_act, routes.on_call_at, state,
                      is_member=is_member)
    dp = build_dispatcher(
        approvals=approvals, authz=authz, access=access, acks=acks,
        inquiries=Inquiries(db, UTC_TZ, "en", clock),
        console=Console(db, access, silences, UTC_TZ, "en", clock),
        migrator=ChatMigrator(db, clock, routes, "en", "UTC"), routes=routes,
        stale_press=StalePressRule(max_age=timedelta(minutes=5)),
        tz=UTC_TZ, locale="en",
    )
    if reverse:
        # The same routers included in the opposite order.
        dp.sub_routers.clear()
        for router in reversed(make_routers()):
            router._parent_router = None
            dp.include_router(router)
        assert [r.name for r in dp.sub_routers] == ["fallbacks", "pages", "card_buttons",
                                                    "commands", "setup"]
    return dp


@pytest.fixture
async def tier(db: Database) -> AsyncIterator[Tier]:
    decision_id = await seed(db)
    session = RecordingSession()
    bot = Bot("42:TEST", session=session)
    yield Tier(dispatcher(db), bot, session, db, decision_id)


# -- card buttons, one handler each -------------------------------------------------------


async def test_approve(tier: Tier) -> None:
    answer = await tier.press(card_data("a", tier.decision_id))
    assert answer.params["text"] == "Approved — executing"
    assert await tier.state() is DecisionState.APPROVED
    assert ("approve", "approved", ALICE["id"]) in await tier.audit()


async def test_reject(tier: Tier) -> None:
    answer = await tier.press(card_data("r", tier.decision_id))
    assert answer.params["text"].startswith("Rejected.")
    assert await tier.state() is DecisionState.REJECTED


async def test_reanalyze(tier: Tier) -> None:
    answer = await tier.press(card_data("z", tier.decision_id))
    assert answer.params["text"] == "Re-analyzing…"
    assert await tier.state() is DecisionState.SUPERSEDED


async def test_silence(tier: Tier) -> None:
    answer = await tier.press(card_data("s", tier.decision_id))
    assert answer.params["text"] == "Silenced for 1h"
    assert await tier.rows("SELECT chat_id FROM silences") == [(CHAT,)]


async def test_save_playbook_of_an_unfinished_decision_is_refused(tier: Tier) -> None:
    answer = await tier.press(card_data("p", tier.decision_id))
    assert "out of date" in answer.params["text"] and answer.params["show_alert"] is True
    assert ("save_playbook", "refused", ALICE["id"]) in await tier.audit()


@pytest.mark.parametrize(("act", "note"), [("d", "details"), ("h", "history")])
async def test_details_and_history_answer_in_the_thread(tier: Tier, act: str, note: str) -> None:
    answer = await tier.press(card_data(act, tier.decision_id), MALLORY)
    assert answer.params["text"] == "Working…"
    assert ("reply", CHAT) in await tier.outbox()
    assert [u for a, _, u in await tier.audit() if a == note] == [MALLORY["id"]]
    assert await tier.state() is DecisionState.PENDING


@pytest.mark.parametrize("act", ["a", "r", "z", "s", "p"])
async def test_a_non_approver_changes_nothing(tier: Tier, act: str) -> None:
    answer = await tier.press(card_data(act, tier.decision_id), MALLORY)
    assert "not allowed" in answer.params["text"] and "666" in answer.params["text"]
    assert answer.params["show_alert"] is True
    assert await tier.state() is DecisionState.PENDING
    assert [r for _, r, _ in await tier.audit()] == ["not_allowed"]
    assert await tier.rows("SELECT id FROM silences") == []


async def test_a_press_queued_while_down_is_recorded_not_carried_out(db: Database) -> None:
    decision_id = await seed(db)
    session = RecordingSession()
    tier = Tier(dispatcher(db), Bot("42:TEST", session=session), session, db,
                decision_id)
    await tier.press(card_data("a", decision_id), age=timedelta(minutes=5, seconds=1))
    assert await tier.state() is DecisionState.PENDING
    assert ("approve", "stale_press", ALICE["id"]) in await tier.audit()
    assert ("reply", CHAT) in await tier.outbox()  # the thread asks to press again
    # A press just within CALLBACK_MAX_AGE is carried out.
    await tier.press(card_data("a", decision_id), age=timedelta(minutes=5))
    assert await tier.state() is DecisionState.APPROVED


async def test_ack_and_unack_are_open_to_members_not_to_strangers(tier: Tier) -> None:
    answer = await tier.press(card_data("k", tier.decision_id), MALLORY)
    assert answer.params["show_alert"] is True and "members" in answer.params["text"]
    answer = await tier.press(card_data("k", 0), CAROL)  # a reminder's button: no decision
    assert answer.params["text"] == "Acknowledged — the incident is yours"
    answer = await tier.press(card_data("u", tier.decision_id), CAROL)
    assert answer.params["text"] == "Given back — nobody is on it now"
    assert await tier.audit() == [("ack", "ack_not_member", MALLORY["id"]),
                                  ("ack", "acknowledged", CAROL["id"]),
                                  ("unack", "given_back", CAROL["id"])]
    assert await tier.state() is DecisionState.PENDING  # an ack decides nothing


async def test_an_ack_queued_while_down_is_recorded_not_carried_out(db: Database) -> None:
    decision_id = await seed(db)
    session = RecordingSession()
    tier = Tier(dispatcher(db), Bot("42:TEST", session=session), session, db,
                decision_id)
    await tier.press(card_data("k", decision_id), CAROL, age=timedelta(hours=1))
    assert await tier.audit() == [("ack", "stale_press", CAROL["id"])]
    assert await tier.rows("SELECT acked_by_id FROM incidents") == [(None,)]


# -- buttons no handler is for ------------------------------------------------------------

GARBAGE = [
    "zz9:unknown",
    "c1:a:INC-7K3F9Q:99999999999999999999",  # beyond SQLite's INTEGER
    "c1:a:INC-7K3F9Q:-1",
    "c1:q:INC-7K3F9Q:1",  # no such action
    "c1:a:inc-7k3f9q'--:1",
    "c1:a:INC-7K3F9Q",  # a field short
    "c1:a:INC-7K3F9Q:1:2",
    "h1:x:99999999999999999999:10",
    "h1:x:0:51",
    "h1:x:100000000:10",
    "s1:x:S-1'; DROP TABLE silences",
    "c1:a:INC-7K3F9Q:１",  # a full-width digit
    "\x00",
]


@pytest.mark.parametrize("reverse", [False, True], ids=["order", "reversed"])
@pytest.mark.parametrize("data", GARBAGE)
async def test_unknown_buttons_get_a_clear_toast_in_any_router_order(
        db: Database, data: str, reverse: bool) -> None:
    decision_id = await seed(db)
    session = RecordingSession()
    tier = Tier(dispatcher(db, reverse=reverse), Bot("42:TEST", session=session), session, db,
                decision_id)
    answer = await tier.press(data)
    assert "out of date or not one of ours" in answer.params["text"]
    assert answer.params["show_alert"] is True
    assert await tier.audit() == [("unknown_button", "ignored", ALICE["id"])]
    assert await tier.state() is DecisionState.PENDING


@pytest.mark.parametrize("reverse", [False, True], ids=["order", "reversed"])
async def test_presses_in_unserved_chats_only_stop_the_spinner(db: Database,
                                                               reverse: bool) -> None:
    decision_id = await seed(db)
    session = RecordingSession()
    tier = Tier(dispatcher(db, reverse=reverse), Bot("42:TEST", session=session), session, db,
                decision_id)
    for data in (card_data("a", decision_id), "zz9:unknown", "s1:x:S-000001"):
        answer = await tier.press(data, chat=UNSERVED)
        assert "text" not in answer.params
    assert await tier.audit() == [] and await tier.outbox() == []
    assert await tier.state() is DecisionState.PENDING


# -- set-up commands and migration ----------------------------------------------------------


@pytest.mark.parametrize("chat", [CHAT, UNSERVED])
@pytest.mark.parametrize("command", ["/start", "/whoami"])
async def test_setup_commands_answer_anywhere(tier: Tier, chat: int, command: str) -> None:
    await tier.say(command, MALLORY, chat=chat)
    assert await tier.outbox() == [("message", chat)]


async def test_commands_of_served_chats_are_ignored_elsewhere(tier: Tier) -> None:
    for command in ("/help", "/silences", "/incidents", "/history", "/silence 1h x=y",
                    "/unsilence S-000001"):
        await tier.say(command, ALICE, chat=UNSERVED)
    await tier.say("a reason", ALICE, chat=UNSERVED, reply_to=CARD_MESSAGE)
    assert await tier.outbox() == [] and await tier.audit() == []


async def test_migration_of_a_served_chat_is_recorded(tier: Tier) -> None:
    await tier.say("", chat=CHAT, migrate_to_chat_id=-1007777777777)
    assert await tier.rows("SELECT old_chat_id, new_chat_id FROM chat_migrations") == [
        (CHAT, -1007777777777)]
    assert ("message", -1007777777777) in await tier.outbox()


async def test_migration_of_an_unserved_chat_is_ignored(tier: Tier) -> None:
    await tier.say("", chat=UNSERVED, migrate_to_chat_id=-1007777777777)
    assert await tier.rows("SELECT * FROM chat_migrations") == []
    assert await tier.outbox() == []


# -- commands of served chats and the buttons under their answers --------------------------


@pytest.mark.parametrize("command", ["/help", "/silences", "/incidents", "/history cart",
                                     "/help@opsgate_bot"])
async def test_read_commands_answer_with_a_reply(tier: Tier, command: str) -> None:
    if "@" in command:
        tier.session.add(200, {"ok": True, "result": BOT_USER})  # getMe, for the mention
        await tier.dp.feed_raw_update(tier.bot, {"update_id": next(_ids), "message": {
            **tier._message(CHAT, 5000), "from": MALLORY, "text": command}})
        assert tier.session.take()[0].method == "getMe"
    else:
        await tier.say(command, MALLORY)
    assert await tier.outbox() == [("message", CHAT)]
    rows = await tier.rows("SELECT payload FROM outbox")
    assert '"reply_to":' in rows[0][0]


async def test_silence_and_unsilence_commands(tier: Tier) -> None:
    await tier.say("/silence alertname=Crash 1h deploy", MALLORY)
    assert await tier.rows("SELECT id FROM silences") == []
    assert ("silence", "not_allowed", MALLORY["id"]) in await tier.audit()
    await tier.say("/silence alertname=Crash 1h deploy")
    [(sid,)] = await tier.rows("SELECT id FROM silences")
    await tier.say(f"/unsilence {sid}", MALLORY)
    assert await tier.rows("SELECT expired_at FROM silences") == [(None,)]
    await tier.say(f"/unsilence {sid}")
    [(expired,)] = await tier.rows("SELECT expired_at FROM silences")
    assert expired is not None


async def test_history_page_button_edits_the_list(tier: Tier) -> None:
    await tier.sent_list(700)
    answer = await tier.press("h1:cart:0:10", MALLORY, message_id=700)
    assert answer.params["text"] == "Working…"
    rows = await tier.rows("SELECT kind, chat_id, payload FROM outbox WHERE state != 'done'")
    assert [(k, c) for k, c, _ in rows] == [("edit", CHAT)]
    assert '"message_id": 700' in rows[0][2]


async def test_expire_silence_button(tier: Tier) -> None:
    silences = SilenceService(tier.db, lambda: T0, "en", "UTC")
    created = await silences.create(Actor(user_id=111, name="@alice", chat_id=CHAT), CHAT,
                                    [Matcher(name="alertname", value="Crash")],
                                    T0 + timedelta(hours=1), "x")
    sid = created.silence.id
    await tier.sent_list(701)
    refused = await tier.press(f"s1:x:{sid}", MALLORY, message_id=701)
    assert "expire silences" in refused.params["text"] and refused.params["show_alert"] is True
    assert await tier.rows("SELECT expired_at FROM silences") == [(None,)]
    done = await tier.press(f"s1:x:{sid}", ALICE, message_id=701)
    assert done.params["text"] == "Silence expired"
    assert ("edit", CHAT) in await tier.outbox()


async def test_a_reply_to_the_thread_after_reject_is_the_reason(tier: Tier) -> None:
    await tier.press(card_data("r", tier.decision_id))
    await tier.say("/help", reply_to=CARD_MESSAGE)  # a command, not a reason
    await tier.say("bad proposal", reply_to=CARD_MESSAGE)
    async with tier.db.read() as conn:
        decision = await repo.get_decision(conn, tier.decision_id)
    assert decision is not None and decision.reason == "bad proposal"


@pytest.mark.parametrize("on_card", [True, False], ids=["on a card", "not on the list"])
@pytest.mark.parametrize("data", ["h1:cart:0:10", "s1:x:S-000001"])
async def test_forged_list_buttons_are_refused(tier: Tier, data: str, on_card: bool) -> None:
    """A list button edits the message it is on: not a card, and only with a button the
    list really has."""
    await tier.sent_list(702)
    answer = await (tier.press(data, ALICE) if on_card
                    else tier.press(data, ALICE, message_id=702, forged=True))
    assert "does not belong" in answer.params["text"]
    assert await tier.outbox() == []
    assert [r for _, r, _ in await tier.audit()] == ["wrong_message"]


async def test_a_press_names_the_incident_of_its_message(tier: Tier) -> None:
    async with tier.db.write() as conn:
        await repo.insert_incident(conn, make_incident(1, chat_id=CHAT, group_key="other"))
        await repo.save_card(conn, "INC-000001", CHAT, message_id=101, thread_id=None,
                             rendered_hash="h")
    # Approve INC-7K3F9Q from the card of INC-000001, and from a message we never sent.
    wrong = await tier.press(card_data("a", tier.decision_id), message_id=101)
    assert "does not belong" in wrong.params["text"]
    unknown = await tier.press(card_data("a", tier.decision_id), message_id=999)
    assert "out of date" in unknown.params["text"]
    gone = await tier.press(f"c1:a:INC-NOSUCH:{tier.decision_id}", message_id=999)
    assert "Unknown incident" in gone.params["text"]
    assert await tier.state() is DecisionState.PENDING
    assert [r for _, r, _ in await tier.audit()] == ["wrong_message", "stale_card",
                                                      "unknown_incident"]


async def test_a_card_pressed_before_its_message_id_is_stored(tier: Tier) -> None:
    """Delivery stores the message id just after Telegram answers; a press in between is
    bound by Telegram's copy of the message, which carries that very button."""
    async with tier.db.write() as conn:
        await conn.execute("UPDATE cards SET message_id = NULL")
    forged = await tier.press(card_data("d", tier.decision_id), message_id=555, forged=True)
    assert "out of date" in forged.params["text"]
    real = await tier.press(card_data("d", tier.decision_id), message_id=555)
    assert real.params["text"] == "Working…"
    assert [r for _, r, _ in await tier.audit()] == ["stale_card", "1 messages"]


async def test_a_card_whose_id_is_stored_while_the_press_is_checked(
    tier: Tier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read of the pressed message's owner runs just before delivery commits the card's
    message id, the read of the card just after: the press is on that card all the same."""
    stored_later = IncidentAccess.incident_of_message

    async def before_the_commit(self: IncidentAccess, chat_id: int, message_id: int) -> None:
        monkeypatch.setattr(IncidentAccess, "incident_of_message", stored_later)

    monkeypatch.setattr(IncidentAccess, "incident_of_message", before_the_commit)
    answer = await tier.press(card_data("d", tier.decision_id))
    assert answer.params["text"] == "Working…"
    assert IncidentAccess.incident_of_message is stored_later  # the miss did happen
    assert [r for _, r, _ in await tier.audit()] == ["1 messages"]
