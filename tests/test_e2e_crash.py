"""`python -m bot run` as a real subprocess, killed with SIGKILL at bad moments."""

from __future__ import annotations

from bot_process import BotProcess
from harness import CHAT

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator


def _cards(emu: RunningEmulator) -> list[dict]:
    return [m for m in emu.emulator.messages(CHAT) if "reply_to_message" not in m]


async def test_sigkill_after_2xx_before_delivery_still_delivers_once(
    botproc: BotProcess, emu: RunningEmulator
) -> None:
    await botproc.start()
    # Telegram is "down" for this process: nothing can be delivered before the kill.
    emu.emulator.inject_fault("sendMessage", 502, count=10_000)
    assert await botproc.post("crashloop-firing.json") == 200
    await botproc.kill()
    assert _cards(emu) == []

    emu.emulator.clear_faults()
    await botproc.start()
    await wait_for(lambda: _cards(emu) and botproc.outbox_pending() == 0, 30)
    ok_sends = [c for c in emu.emulator.calls("sendMessage") if c["ok"]]
    assert len(_cards(emu)) == 1
    assert len(ok_sends) == 1
    assert await botproc.terminate() == 0


async def test_sigkill_between_firing_and_resolving(
    botproc: BotProcess, emu: RunningEmulator
) -> None:
    await botproc.start()
    assert await botproc.post("single-firing.json") == 200
    await wait_for(lambda: _cards(emu) and botproc.outbox_pending() == 0, 30)
    (card,) = _cards(emu)
    await botproc.kill()

    await botproc.start()
    assert await botproc.post("single-resolved.json") == 200
    await wait_for(
        lambda: "RESOLVED" in emu.emulator.message(CHAT, card["message_id"])["text"].upper()
        and botproc.outbox_pending() == 0,
        30,
    )
    assert len(_cards(emu)) == 1
    assert await botproc.terminate() == 0
