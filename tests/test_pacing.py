"""Pacing: token buckets per chat and overall, and delivery that respects them."""

from __future__ import annotations

import json

import pytest
from harness import CHAT, AppFactory, Harness, fixture

from bot.telegram.pacing import Pacer, Rate
from sandbox.emulator import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("text", "count", "per"), [("20/1m", 20, 60), ("30/1s", 30, 1),
                                                    ("3/3s", 3, 3)])
def test_rates_parse(text: str, count: int, per: float) -> None:
    assert Rate.parse(text) == Rate(count, per)


@pytest.mark.parametrize("text", ["", "20", "0/1s", "x/1s", "5/soon"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


def test_group_burst_then_one_every_three_seconds() -> None:
    clock = FakeClock()
    pacer = Pacer(Rate(20, 60), Rate(3, 3), Rate(30, 1), clock=clock)
    for _ in range(20):
        assert pacer.ready_at(-100) == clock.now
        pacer.take(-100)
    assert pacer.ready_at(-100) == pytest.approx(clock.now + 3)
    # Another chat has its own bucket.
    assert pacer.ready_at(-200) == clock.now
    clock.now += 3
    assert pacer.ready_at(-100) == pytest.approx(clock.now)


def test_private_chats_and_the_global_limit() -> None:
    clock = FakeClock()
    pacer = Pacer(Rate(20, 60), Rate(3, 3), Rate(4, 1), clock=clock)
    for _ in range(3):
        pacer.take(111)
    assert pacer.ready_at(111) == pytest.approx(clock.now + 1)
    pacer.take(-1)
    # Four writes in this second already: every chat waits for the global bucket.
    assert pacer.ready_at(-2) == pytest.approx(clock.now + 0.25)


async def test_delivery_paces_a_storm(start_app: AppFactory) -> None:
    h: Harness = await start_app(telegram_pacing=True, telegram_group_rate="4/1s")
    for i in range(10):
        payload = fixture("single-firing.json")
        payload["groupKey"] = f"group-{i}"
        payload["alerts"][0]["fingerprint"] = f"{i:016x}"
        status, _ = await h.post("/alerts/alertmanager", json.loads(json.dumps(payload)))
        assert status == 200
    await wait_for(lambda: len(h.cards()) == 10, 30)
    await h.settled(timeout=30)
    writes = sorted(c["at"] for c in h.em.calls() if c["ok"] and c["method"] in (
        "sendMessage", "editMessageText") and str(c["params"].get("chat_id")) == str(CHAT))
    # 4 at once, then one every 0.25 s: the last write comes ≥ (n-4)/4 s after the first
    # (0.5 s of slack for the first call's own latency). Unpaced, all take ~0.1 s.
    assert len(writes) >= 10
    assert writes[-1] - writes[0] >= (len(writes) - 4) * 0.25 - 0.5
