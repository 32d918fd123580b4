"""The durable inbox and the clean stop, with the real app as a subprocess: killed at the
fault points between receiving an update and handling it, and stopped with SIGTERM while a
Telegram write is on the wire."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from bot_process import BotProcess, free_port
from harness import ALICE, CHAT, AppFactory, Harness, is_card
from pg import write_lock_held

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator

SIGKILL_EXIT = -9


def _cards(emu: RunningEmulator) -> list[dict[str, Any]]:
    return [m for m in emu.emulator.messages(CHAT) if is_card(m)]


def _button(message: dict[str, Any], word: str) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for b in row:
            if word in b["text"] and "callback_data" in b:
                return b["callback_data"]
    raise KeyError(word)


async def _pending_card(botproc: BotProcess, emu: RunningEmulator) -> dict[str, Any]:
    assert await botproc.post("crashloop-firing.json") == 200
    return await wait_for(
        lambda: next((c for c in _cards(emu) if "Awaiting approval" in c["text"]), None)
        if botproc.outbox_pending() == 0 else None,
        30, message="no card awaiting approval")


def _press(emu: RunningEmulator, card: dict[str, Any]) -> str:
    return emu.emulator.press_button(CHAT, card["message_id"], _button(card, "Approve"), ALICE)


def _audit(botproc: BotProcess, action: str) -> list[str]:
    return [r[0] for r in botproc.rows(
        "SELECT result FROM audit WHERE action = ? ORDER BY id", (action,))]


async def _confirm_at_telegram(emu: RunningEmulator, botproc: BotProcess) -> None:
    """What aiogram did before the inbox: tell Telegram the update was received. The
    emulator then forgets it, so only the inbox can carry the press."""
    (highest,) = botproc.rows("SELECT MAX(update_id) FROM inbox")[0]
    await emu.emulator.getUpdates({"offset": highest + 1, "timeout": 0})
    assert emu.emulator.pending_updates() == []


async def _succeeded(botproc: BotProcess) -> None:
    await wait_for(lambda: botproc.rows("SELECT state FROM decisions") == [("succeeded",)]
                   and botproc.outbox_pending() == 0, 30, message="the action did not run")


async def test_a_press_recorded_then_killed_before_its_handler_is_carried_out_once(
    botproc: BotProcess, emu: RunningEmulator,
) -> None:
    # Telegram takes a toast up to 15 s after the press; the restart below (a new process,
    # which imports aiogram) can take longer than that on a loaded machine, and the window is
    # not what this test is about.
    emu.emulator.callback_answer_window = 120.0
    await botproc.start(OPSGATE_FAULT="inbox.recorded")
    card = await _pending_card(botproc, emu)
    query = _press(emu, card)
    # The process kills itself once the press is in the inbox, before any handler saw it.
    assert await botproc.exited() == SIGKILL_EXIT
    assert botproc.rows("SELECT state FROM inbox") == [("pending",)]
    assert _audit(botproc, "approve") == []
    await _confirm_at_telegram(emu, botproc)

    await botproc.start()
    await _succeeded(botproc)
    assert _audit(botproc, "approve") == ["approved"]
    assert _audit(botproc, "execute") == ["started", "succeeded"]
    assert botproc.rows("SELECT state FROM inbox") == [("done",)]
    # The toast is answered by the handler after its commit: the audit row can be seen first.
    await wait_for(lambda: emu.emulator.callback_answer(query) is not None, 15,
                   message="the press was never answered")
    answer = emu.emulator.callback_answer(query)
    assert answer is not None and "Approved" in answer["text"]
    assert len(_cards(emu)) == 1
    assert await botproc.terminate() == 0


async def test_a_press_is_marked_handled_in_the_commit_that_carries_it_out(
    botproc: BotProcess, emu: RunningEmulator,
) -> None:
    await botproc.start(OPSGATE_FAULT="inbox.handled")
    card = await _pending_card(botproc, emu)
    _press(emu, card)
    # Killed right after the handler returned: the approval and the done mark committed as
    # one, so nothing is left to hand over again.
    assert await botproc.exited() == SIGKILL_EXIT
    assert botproc.rows("SELECT state FROM inbox") == [("done",)]
    assert _audit(botproc, "approve") == ["approved"]
    # The approval's commit wakes the executor, which may claim the run while the handler
    # is still answering the press: what the restart must do depends on how far it got.
    ((at_kill,),) = botproc.rows("SELECT state FROM decisions")
    await _confirm_at_telegram(emu, botproc)

    await botproc.start()
    if at_kill == "executing":
        # Cut short mid-run: never run again, reported as an unknown outcome.
        await wait_for(lambda: botproc.rows("SELECT state FROM decisions") == [("failed",)]
                       and botproc.outbox_pending() == 0, 30, message="not recovered")
        assert _audit(botproc, "execute") == ["started", "unknown_outcome"]
    else:
        assert at_kill in ("approved", "succeeded")
        await _succeeded(botproc)
        assert _audit(botproc, "execute") == ["started", "succeeded"]
    assert _audit(botproc, "approve") == ["approved"]
    assert await botproc.terminate() == 0


async def test_sigterm_while_a_card_is_on_the_wire_records_it_and_never_sends_it_again(
    botproc: BotProcess, emu: RunningEmulator,
) -> None:
    await botproc.start()
    emu.emulator.hold("sendMessage")
    assert await botproc.post("crashloop-firing.json") == 200
    await wait_for(lambda: emu.emulator.held("sendMessage") == 1, 15)
    assert botproc.proc is not None
    botproc.proc.terminate()
    await wait_for(lambda: "stopping" in botproc.log_text(), 15, message="SIGTERM not seen")
    assert botproc.rows("SELECT COUNT(*) FROM outbox WHERE state = 'sending'") == [(1,)]
    emu.emulator.release("sendMessage")  # Telegram answers while the bot is stopping
    assert await botproc.exited() == 0
    assert botproc.rows("SELECT COUNT(*) FROM outbox WHERE state = 'sending'") == [(0,)]
    (card,) = _cards(emu)
    assert botproc.rows("SELECT message_id FROM cards") == [(card["message_id"],)]

    await botproc.start()
    await wait_for(lambda: botproc.outbox_pending() == 0
                   and "Awaiting approval" in emu.emulator.message(CHAT, card["message_id"])[
                       "text"], 30)
    assert await botproc.terminate() == 0
    assert len(_cards(emu)) == 1
    assert "released" not in botproc.log_text() and "in flight" not in botproc.log_text()
    assert len([c for c in emu.emulator.calls("sendMessage")
                if c["ok"] and "Details" in str(c["params"].get("reply_markup"))]) == 1


# -- the webhook door --------------------------------------------------------------------

SECRET = "s3cret-token"


async def _webhook_app(start_app: AppFactory, **overrides: Any) -> tuple[Harness, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    return await start_app(http_port=port, telegram_webhook_url=url,
                           telegram_webhook_secret=SECRET, **overrides), url


async def _push(url: str, body: bytes, secret: str = SECRET) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=body, headers={
                "Content-Type": "application/json",
                "X-Telegram-Bot-Api-Secret-Token": secret}) as resp:
            return resp.status


def _inbox_ids(h: Harness) -> list[int]:
    return [r[0] for r in h.rows("SELECT update_id FROM inbox ORDER BY update_id")]


async def test_the_webhook_answers_200_only_once_the_update_is_stored(
    start_app: AppFactory, tmp_path: Path,
) -> None:
    h, url = await _webhook_app(start_app)
    command = {"update_id": 900001, "message": {
        "message_id": 5, "date": 1764000000, "text": "/whoami",
        "chat": {"id": CHAT, "type": "supergroup", "title": "On-call"},
        "from": {"id": ALICE["id"], "is_bot": False, "first_name": "Alice"}}}
    assert await _push(url, json.dumps(command).encode()) == 200
    assert 900001 in _inbox_ids(h)  # stored when the 200 came
    # A repeat (Telegram retries until it gets a 2xx) is the same row, handled once.
    assert await _push(url, json.dumps(command).encode()) == 200
    await h.settled()
    assert _inbox_ids(h).count(900001) == 1
    whoami = [m for m in h.bot_messages() if str(ALICE["id"]) in m["text"]]
    assert len(whoami) == 1, whoami

    # Forged, oversized and garbage bodies are refused and store nothing.
    assert await _push(url, json.dumps({"update_id": 900002}).encode(), secret="wrong") == 401
    assert await _push(url, b"{" * 300_000) == 413
    assert await _push(url, b'{"update_id": 99999999999999999999999}') == 400
    assert await _push(url, b'{"update_id": "x"}') == 400
    assert await _push(url, b"[" * 5000 + b"]" * 5000) == 400
    assert await _push(url, b"\xed\xa0\x80") == 400
    assert _inbox_ids(h) == [900001]


async def test_the_webhook_answers_503_when_the_update_cannot_be_stored(
    start_app: AppFactory, tmp_path: Path,
) -> None:
    h, url = await _webhook_app(start_app, database_busy_timeout="100ms")
    async with write_lock_held(h.db_target):
        status = await _push(url, json.dumps({"update_id": 900003}).encode())
    assert status == 503  # Telegram keeps it and sends it again
    assert 900003 not in _inbox_ids(h)


async def test_an_update_that_cannot_be_stored_is_not_confirmed_to_telegram(
    start_app: AppFactory, tmp_path: Path,
) -> None:
    h = await start_app(database_busy_timeout="100ms")
    await h.alert("crashloop-firing.json")
    card = await h.wait_card(lambda m: "Awaiting approval" in m["text"])
    await h.settled()
    calls_before = len(h.em.calls("getUpdates"))
    async with write_lock_held(h.db_target):
        query = h.press_nowait(card["message_id"], "Approve", ALICE)
        (update,) = h.em.pending_updates()
        # The bot fetched it, could not store it, and asked again without confirming it.
        await wait_for(lambda: len(h.em.calls("getUpdates")) >= calls_before + 3, 15)
        assert h.em.pending_updates() == [update]
        assert all(int(c["params"].get("offset") or 0) <= update["update_id"]
                   for c in h.em.calls("getUpdates"))
        assert h.em.callback_answer(query) is None
    await wait_for(lambda: h.em.callback_answer(query), 15, message="press never handled")
    await h.settled()
    assert h.em.pending_updates() == []
    assert [r["result"] for r in await h.audit() if r["action"] == "approve"] == ["approved"]
