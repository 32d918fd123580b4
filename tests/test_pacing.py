"""Pacing: Telegram's flood limits kept before Telegram enforces them.

The pacer on its own (a fake clock), then the real app against the emulator with the same
flood control as Telegram, scaled in time so a storm runs in seconds (same shape).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from harness import CHAT, AppFactory, Harness, fixture

from bot.config import Settings
from bot.telegram.pacing import Limits, Pacer, Rate, writes_to_chat
from sandbox.emulator import FloodLimits, wait_for
from storage import outbox

GROUP, OTHER, PERSON = -100, -200, 111


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer(clock: FakeClock, **limits: Any) -> Pacer:
    return Pacer(Limits(**limits), clock=clock)


def send_while_ready(p: Pacer, clock: FakeClock, chat: int, *, people: bool = False) -> int:
    """Record writes to `chat` for as long as the pacer allows one right now."""
    sent = 0
    while p.ready_at(chat, people=people) <= clock.now:
        p.record(chat)
        sent += 1
    return sent


@pytest.mark.parametrize(("text", "count", "per"), [("20/1m", 20, 60), ("30/1s", 30, 1),
                                                    ("3/3s", 3, 3), ("3/0.15", 3, 0.15)])
def test_rates_parse(text: str, count: int, per: float) -> None:
    assert Rate.parse(text) == Rate(count, per)


@pytest.mark.parametrize("text", ["", "20", "0/1s", "x/1s", "5/soon"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_a_chat_gets_a_burst_of_three_then_one_a_second() -> None:
    clock = FakeClock()
    p = pacer(clock)
    for chat in (GROUP, PERSON):
        assert send_while_ready(p, clock, chat) == 3
        assert p.ready_at(chat) == pytest.approx(clock.now + 1)
    clock.now += 1
    assert send_while_ready(p, clock, PERSON) == 1
    # Two writes at once (a topic rename and close) wait until the bucket holds both.
    assert p.ready_at(PERSON, 2) == pytest.approx(clock.now + 2)


def test_a_group_window_keeps_headroom_for_people() -> None:
    clock = FakeClock()
    p = pacer(clock, headroom=3)
    sent = 0
    for _ in range(30):  # a second at a time: the bucket never binds for long
        sent += send_while_ready(p, clock, GROUP)
        clock.now += 1
    # The other lanes stop at 17 of the 20 a minute allows...
    assert sent == 17
    first_write_at = 1000.0
    assert p.ready_at(GROUP) == pytest.approx(first_write_at + 60)
    # ... and what people wait for still goes at once, up to the window's 20.
    assert send_while_ready(p, clock, GROUP, people=True) == 3
    assert p.ready_at(GROUP, people=True) == pytest.approx(first_write_at + 60)
    # A private chat has no such window; another group has its own.
    assert p.ready_at(OTHER) == clock.now


def test_the_overall_limit_holds_across_chats() -> None:
    clock = FakeClock()
    p = pacer(clock, overall=Rate(5, 1))
    for chat in (-1, -2, -3, -4, -5):
        assert p.ready_at(chat) == clock.now
        p.record(chat)
    assert p.ready_at(-6) == pytest.approx(clock.now + 1)
    assert p.ready_at(PERSON, people=True) == pytest.approx(clock.now + 1)


def test_a_restarted_pacer_keeps_to_what_was_sent() -> None:
    clock = FakeClock()
    before = pacer(clock)
    sent: list[tuple[int, float, int]] = []
    for _ in range(17):
        clock.now = max(clock.now, before.ready_at(GROUP))
        before.record(GROUP)
        sent.append((GROUP, clock.now, 1))
    after = pacer(clock)
    after.seed(sent)
    assert after.ready_at(GROUP) == before.ready_at(GROUP) == pytest.approx(1000.0 + 60)
    # A row that wrote twice is stored once with writes=2: both count.
    again = pacer(clock)
    again.seed([(PERSON, clock.now, 2)])
    assert send_while_ready(again, clock, PERSON) == 1


@pytest.mark.parametrize(("method", "chat_id", "counted"), [
    ("sendMessage", -100, -100), ("editMessageText", "111", 111), ("closeForumTopic", -5, -5),
    ("answerCallbackQuery", None, None), ("getChat", -100, None), ("setMyCommands", None, None),
    ("sendMessage", "@channel", None),
])
def test_which_calls_count(method: str, chat_id: object, counted: int | None) -> None:
    assert writes_to_chat(method, chat_id) == counted


# ------------------------------------------------------------------ against the emulator

SPEED = 15.0  # every period divided by this: a 60 s window is 4 s
WINDOW = 60 / SPEED


def scaled_settings() -> dict[str, Any]:
    return dict(
        telegram_pacing=True,
        telegram_group_rate=f"20/{WINDOW}",
        telegram_group_burst=f"3/{3 / SPEED}",
        telegram_private_rate=f"3/{3 / SPEED}",
        telegram_global_rate=f"30/{1 / SPEED}",
        # The first card's wait for its proposal, scaled like the windows it would idle in.
        first_card_wait=f"{int(2000 / SPEED)}ms",
    )


async def post_incidents(h: Harness, count: int, start: int = 0) -> None:
    """`count` new incidents at once, so the backlog is there from the start."""

    async def one(i: int) -> None:
        payload = fixture("single-firing.json")
        payload["groupKey"] = f"group-{i}"
        payload["alerts"][0]["fingerprint"] = f"{i:016x}"
        payload["alerts"][0]["labels"]["service"] = f"svc-{i}"
        status, body = await h.post("/alerts/alertmanager", json.loads(json.dumps(payload)))
        assert status == 200, body

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


def chat_writes(h: Harness, chat: int = CHAT, since: int = 0) -> list[dict[str, Any]]:
    """Every call that wrote to the chat (or tried to), from the emulator's log (from its
    `since`-th call on)."""
    return [c for c in h.em.calls()[since:] if c["method"] in (
        "sendMessage", "editMessageText", "editMessageReplyMarkup", "deleteMessage",
        "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic",
    ) and str(c["params"].get("chat_id")) == str(chat)]


async def stored_writes(h: Harness) -> int:
    async with h.db.read() as conn:
        return sum(n for _, _, n in await outbox.recent_writes(conn, 0))


def used_fraction(times: list[float]) -> float:
    """Writes in the whole windows from the first write to the last, over what the group
    window allows in them (the backlog never ran dry before the last write)."""
    start = times[0]
    windows = int((times[-1] - start) // WINDOW)
    assert windows >= 2, "the storm was too short to measure"
    inside = [t for t in times if t < start + windows * WINDOW]
    return len(inside) / (windows * 20)


async def test_a_storm_draws_no_429_and_uses_the_budget(start_app: AppFactory) -> None:
    h: Harness = await start_app(**scaled_settings())
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    await post_incidents(h, 40)
    await wait_for(lambda: len(h.cards()) == 40, 60)
    await h.settled(timeout=30)
    writes = chat_writes(h)
    assert [c for c in writes if c["error_code"] == 429] == []
    ok = sorted(c["at"] for c in writes if c["ok"])
    assert used_fraction(ok) >= 0.8
    # The pacer counted what Telegram accepted, and the outbox stored it.
    assert await stored_writes(h) == len(ok)


async def test_a_restart_keeps_to_what_was_sent_before(start_app: AppFactory) -> None:
    # A group window long enough that the restart happens inside it.
    window = 6.0
    settings = {**scaled_settings(), "telegram_group_rate": f"20/{window}"}
    h: Harness = await start_app(**settings)
    h.em.set_rate_limits(True, replace(FloodLimits().scaled(SPEED), group_window=window))
    await post_incidents(h, 8)
    await wait_for(lambda: len(h.cards()) == 8, 30)
    await h.settled(timeout=30)
    before = len([c for c in chat_writes(h) if c["ok"]])
    assert 8 <= before <= 17
    await h.app.stop()
    # A new process that forgot those writes would send 8 more cards at once: over 20.
    again: Harness = await start_app(**settings)
    await post_incidents(again, 8, start=100)
    await wait_for(lambda: len(again.cards()) == 16, 30)
    await again.settled(timeout=30)
    assert [c for c in chat_writes(again) if c["error_code"] == 429] == []
    assert await stored_writes(again) == len([c for c in chat_writes(again) if c["ok"]])


def test_headroom_must_leave_room_for_new_cards() -> None:
    with pytest.raises(ValueError, match="TELEGRAM_PEOPLE_HEADROOM=20 leaves nothing"):
        Settings(_env_file=None, telegram_people_headroom=20)  # type: ignore[call-arg]
    limits = Limits.from_settings(Settings(_env_file=None, telegram_people_headroom=5,  # type: ignore[call-arg]
                                           telegram_group_burst="2/1s"))
    assert (limits.headroom, limits.group_burst, limits.group) == (5, Rate(2, 1), Rate(20, 60))


async def test_a_paced_backlog_does_not_hold_up_another_chat(start_app: AppFactory) -> None:
    """The group's backlog of new cards is longer than one look of the worker at the due
    rows, and its window is full; a message queued after it to a private chat, which may
    go, goes at once, not after the backlog."""
    # No storm digest: every card stays queued.
    h: Harness = await start_app(**scaled_settings(), storm_backlog="1h")
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    person = 4242
    h.em.add_chat(person, type="private")
    await post_incidents(h, 60)  # more heads of queues than the worker ever reads at once
    # The lanes nobody waits for may use the window but its headroom: now it is full.
    full = 20 - Limits().headroom
    await wait_for(lambda: len([c for c in chat_writes(h) if c["ok"]]) >= full, 30)
    async with h.db.write() as conn:
        await outbox.enqueue(conn, kind=outbox.MESSAGE, chat_id=person,
                             now=datetime.now(UTC), payload={"text": "for a person"})
    queued = h.em.call_count()
    sent = await wait_for(lambda: [c for c in h.em.calls("sendMessage")
                                   if str(c["params"].get("chat_id")) == str(person)], 30)
    assert sent[0]["ok"]
    assert [c for c in chat_writes(h, since=queued) if c["at"] <= sent[0]["at"]] == []
    assert [c for c in chat_writes(h) if c["error_code"] == 429] == []
