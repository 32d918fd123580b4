"""One message per new incident when the proposal is quick (FIRST_CARD_WAIT): the first
card's outbox row waits, up to a not-before time stored with it, for the analysis; the
analysis ending (or anything else queued for the incident) sends it at once. A slower
analysis gets "Analyzing…" and an edit, and a crash while the card waits keeps the promise."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from bot_process import BotProcess
from factories import T0
from fake_llm import fake_llm_server
from harness import AppFactory

from bot.models import DecisionState
from bot.telegram.delivery import IDLE_POLL, DeliveryWorker
from sandbox.emulator import Emulator, wait_for
from sandbox.server import RunningEmulator
from storage import outbox
from storage.db import Database

SIGKILL_EXIT = -9
INC = "INC-7K3F9Q"
CHAT_ID = -1001000000077
LATER = T0 + timedelta(seconds=30)
ANSWER = {"action": {"verb": "rollout-restart", "target_kind": "deployment",
                     "target_name": "cart", "namespace": "shop", "params": {}},
          "risk": "medium", "reasoning": "Restart it.", "confidence": 0.8}


def writes_about(emu: Emulator, inc: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sendMessage calls that posted the incident's card, and every edit of those."""
    sends = [c for c in emu.calls("sendMessage")
             if c["ok"] and inc in c["params"].get("text", "")
             and "reply_parameters" not in c["params"]]
    edits = [c for c in emu.calls("editMessageText") if inc in c["params"].get("text", "")]
    return sends, edits


# The outbox: the not-before time and what ends it ------------------------------------

async def _card(db: Database, *, chat: int = 1, not_before: datetime | None = LATER) -> None:
    async with db.write() as conn:
        await outbox.enqueue(conn, kind=outbox.CARD, chat_id=chat, incident_id=INC, now=T0,
                             not_before=not_before)


async def no_card(incident_id: str, chat_id: int, *, url_buttons: bool = True) -> None:
    return None


async def _due(db: Database, at: datetime) -> list[str]:
    async with db.read() as conn:
        return [f"{i.kind}:{i.chat_id}" for i in await outbox.due(conn, at.timestamp())]


async def test_a_waiting_card_is_due_at_its_not_before_time_and_delivery_wakes_then(
    db: Database,
) -> None:
    await _card(db)
    assert await _due(db, T0) == []
    assert await _due(db, LATER) == ["card:1"]
    async with db.read() as conn:
        assert await outbox.next_due(conn) == outbox.NextDue(LATER.timestamp(), waiting=True)


async def test_the_wait_holds_through_syncs_and_other_chats_first_cards_and_ends_for_the_rest(
    db: Database,
) -> None:
    await _card(db)
    await _card(db, not_before=None)  # more alerts joined: the same card, the same wait
    await _card(db, chat=2)  # routed into a second chat: it waits as well, behind the first
    assert await _due(db, T0) == []
    async with db.write() as conn:  # the incident resolved: its note must follow the card
        await outbox.enqueue(conn, kind=outbox.REPLY, chat_id=1, incident_id=INC, now=T0,
                             payload={"text": "resolved"})
    assert await _due(db, T0) == ["card:1"]
    async with db.read() as conn:
        assert await outbox.next_due(conn) == outbox.NextDue(T0.timestamp(), waiting=False)


async def test_the_analysis_ending_sends_the_waiting_card_now(db: Database) -> None:
    await _card(db)
    async with db.write() as conn:
        await outbox.end_wait(conn, INC)
    assert await _due(db, T0) == ["card:1"]


async def test_rows_behind_a_head_do_not_make_delivery_look_again_before_the_head_may_go(
    db: Database,
) -> None:
    """A head waiting for its retry holds its key's later rows: the earliest time worth
    waking for is the head's, not the due-looking row behind it (that was a busy loop)."""
    async with db.write() as conn:
        head = await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=1, incident_id=INC,
                                    now=T0, payload={"text": "one"})
        await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=1, incident_id=INC, now=T0,
                             payload={"text": "two"})
        assert head is not None
        await outbox.claim(conn, head)
        await outbox.retry_later(conn, head, LATER.timestamp(), "503")
    async with db.read() as conn:
        assert await outbox.next_due(conn) == outbox.NextDue(LATER.timestamp(), waiting=False)
    assert await _due(db, T0) == []


async def test_delivery_sleeps_until_the_not_before_time_and_sends_then(
    db: Database, emu: RunningEmulator,
) -> None:
    """No busy polling while a row waits: the worker looks at the queue once at start, at
    most once per IDLE_POLL meanwhile, and once more to send; never before the time."""
    wait = 1.0
    bot = Bot(emu.emulator.token, session=AiohttpSession(api=TelegramAPIServer.from_base(
        emu.base_url)))
    worker = DeliveryWorker(db, bot, no_card)
    looks: list[float] = []
    run_once = worker.run_once

    async def counted() -> bool:
        looks.append(time.time())
        return await run_once()

    worker.run_once = counted  # type: ignore[method-assign]
    emu.emulator.add_chat(CHAT_ID, title="Waiting room", admins=[])
    not_before = datetime.now(UTC) + timedelta(seconds=wait)
    async with db.write() as conn:
        await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=CHAT_ID, incident_id=INC,
                             now=datetime.now(UTC), payload={"text": "hi"},
                             not_before=not_before)
    worker.start()
    try:
        sent = await wait_for(lambda: emu.emulator.calls("sendMessage"), 15,
                              message="the waiting row was never sent")
    finally:
        await worker.stop()
        await bot.session.close()
    assert sent[0]["at"] >= not_before.timestamp()
    assert len(looks) <= 2 + math.ceil(wait / IDLE_POLL) + 1, f"{len(looks)} looks at the queue"


# End to end: the emulator counts the writes -----------------------------------------

async def test_a_proposal_ready_within_the_wait_posts_the_card_once_and_never_edits_it(
    start_app: AppFactory,
) -> None:
    # A wait far longer than the test may take: only the analysis ending can send the card.
    h = await start_app(first_card_wait="60s")
    inc = (await h.alert("crashloop-firing.json"))["opened"][0]
    await h.settled()
    sends, edits = writes_about(h.em, inc)
    assert len(sends) == 1 and edits == []
    assert "Awaiting approval" in sends[0]["params"]["text"]
    assert "Analyzing" not in sends[0]["params"]["text"]


async def test_an_analysis_slower_than_the_wait_gets_analyzing_then_the_edit(
    start_app: AppFactory,
) -> None:
    async with fake_llm_server() as llm:
        llm.answer(ANSWER)
        llm.hang = True
        # The app's clock runs a minute behind: the 2 s wait is over as soon as it starts.
        h = await start_app(llm_base_url=llm.url, llm_model="slow-model",
                            clock=lambda: datetime.now(UTC) - timedelta(minutes=1))
        inc = (await h.alert("crashloop-firing.json"))["opened"][0]
        first = await h.wait_card(lambda m: inc in m["text"])
        assert "Analyzing" in first["text"]
        assert (await h.decision(inc)).state is DecisionState.ANALYZING
        llm.release.set()
        card = await h.wait_card(lambda m: inc in m["text"] and "model: slow-model" in m["text"])
        await h.settled()
        assert card["message_id"] == first["message_id"]
        sends, edits = writes_about(h.em, inc)
        assert len(sends) == 1 and len(edits) >= 1


async def test_a_wait_of_zero_posts_analyzing_at_once(start_app: AppFactory) -> None:
    async with fake_llm_server() as llm:
        llm.hang = True
        h = await start_app(llm_base_url=llm.url, llm_model="slow-model", first_card_wait="0s")
        inc = (await h.alert("crashloop-firing.json"))["opened"][0]
        first = await h.wait_card(lambda m: inc in m["text"])
        assert "Analyzing" in first["text"]
        async with h.db.read() as conn:
            async with conn.execute("SELECT not_before FROM outbox WHERE kind = 'card'") as cur:
                assert [tuple(r) for r in await cur.fetchall()] == [(None,)]
        llm.release.set()
        await h.settled()


# A crash while the card waits ------------------------------------------------------

async def test_killed_while_the_card_waits_the_restart_sends_it_once(
    botproc: BotProcess, emu: RunningEmulator,
) -> None:
    async with fake_llm_server() as llm:
        llm.answer(ANSWER)
        llm.hang = True
        settings = {"LLM_BASE_URL": llm.url, "LLM_MODEL": "slow-model",
                    "FIRST_CARD_WAIT": "60s", "TELEGRAM_PACING": "false"}
        await botproc.start(OPSGATE_FAULT="delivery.waiting", **settings)
        try:
            await botproc.post("crashloop-firing.json")
        except aiohttp.ClientError:
            pass  # killed before the answer went out; the alert was committed first
        # Delivery found the card waiting for its not-before time, and the process died.
        assert await botproc.exited() == SIGKILL_EXIT
        ((inc, not_before),) = botproc.rows(
            "SELECT incident_id, not_before FROM outbox WHERE kind = 'card' AND "
            "state = 'pending'")
        assert not_before is not None
        assert writes_about(emu.emulator, inc) == ([], [])
        await wait_for(lambda: llm.in_flight == 0, 15, message="the dead run's request stays")
        asked = len(llm.requests)

        await botproc.start(**settings)
        # The analysis is asked again, and holds; the card keeps waiting meanwhile.
        await wait_for(lambda: llm.in_flight == 1 and len(llm.requests) == asked + 1, 30,
                       message="the restarted analysis did not reach the model")
        assert botproc.rows("SELECT state FROM outbox WHERE kind = 'card'") == [("pending",)]
        llm.release.set()
        await wait_for(lambda: writes_about(emu.emulator, inc)[0]
                       and botproc.outbox_pending() == 0, 30, message="no card after restart")
        sends, edits = writes_about(emu.emulator, inc)
        assert len(sends) == 1 and edits == []
        assert "model: slow-model" in sends[0]["params"]["text"]
        await botproc.terminate()
