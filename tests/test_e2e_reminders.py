"""Reminders that escalate, on a controlled clock, through the real app and emulator.

The app's clock is injected; the tests move it and run the timers' tick themselves (the
background tick reads the same clock, so it can only do the same work, never more). The
clock stays behind real time: delivery schedules its rows on the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ALICE, CAROL, CHAT, AppFactory, Harness, fixture

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(hours=2)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)
        assert self.now < datetime.now(UTC)


ROUTES = """
[[route]]
chat_id = {chat}
oncall = ["@oncall_one", 555]
escalate_to = ["@team_lead"]
remind_after = "10m"
remind_every = "5m"
remind_max = 2
"""


def notes(h: Harness, card: dict[str, Any], marker: str) -> list[dict[str, Any]]:
    return [m for m in h.replies_to(card["message_id"]) if m["text"].startswith(marker)]


def reminders(h: Harness, card: dict[str, Any]) -> list[dict[str, Any]]:
    return notes(h, card, "🔔")


def escalations(h: Harness, card: dict[str, Any]) -> list[dict[str, Any]]:
    return notes(h, card, "📣")


async def tick(h: Harness) -> None:
    await h.pipeline.timers.tick()
    await h.settled()


async def open_card(h: Harness, body: dict[str, Any] | str) -> tuple[str, dict[str, Any]]:
    if isinstance(body, str):
        answer = await h.alert(body)
    else:
        status, answer = await h.post("/alerts/alertmanager", body)
        assert status == 200, answer
    inc = answer["opened"][0]
    await h.settled()
    return inc, await h.wait_card(lambda m: inc in m["text"])


async def remind_rows(h: Harness, inc: str) -> list[str]:
    return [r["result"] for r in await h.audit(inc) if r["action"] == "remind"]


async def test_reminders_escalate_once_and_survive_a_restart(
    start_app: AppFactory, tmp_path: Path
) -> None:
    clock = Clock()
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.format(chat=CHAT))
    app = await start_app(routes_path=str(routes), clock=clock)
    inc, card = await open_card(app, "single-firing.json")

    clock.advance(minutes=9, seconds=59)
    await tick(app)
    assert reminders(app, card) == []

    clock.advance(seconds=1)
    await tick(app)
    await tick(app)  # the same moment again: nothing more is due
    (first,) = reminders(app, card)
    assert "reminder 1 of 2" in first["text"] and inc in first["text"]
    assert "@oncall_one" in first["text"]
    mention = next(e for e in first["entities"] if e["type"] == "text_mention")
    assert mention["user"]["id"] == 555
    data = [b["callback_data"] for row in first["reply_markup"]["inline_keyboard"] for b in row]
    assert data == [f"c1:k:{inc}:0"]

    # A restart right after a reminder does not repeat it...
    await app.app.stop()
    app = await start_app(routes_path=str(routes), clock=clock)
    await tick(app)
    assert len(reminders(app, card)) == 1
    # ...and one that fell due while the bot was down is not lost.
    await app.app.stop()
    clock.advance(minutes=5)
    app = await start_app(routes_path=str(routes), clock=clock)
    await tick(app)
    assert [len(reminders(app, card)), len(escalations(app, card))] == [2, 0]
    assert "reminder 2 of 2" in reminders(app, card)[1]["text"]

    clock.advance(minutes=4)
    await tick(app)
    assert escalations(app, card) == []
    clock.advance(minutes=1)
    await tick(app)
    (escalation,) = escalations(app, card)
    assert "@team_lead" in escalation["text"] and "after 2 reminders" in escalation["text"]
    assert "@oncall_one" not in escalation["text"]

    clock.advance(minutes=30)
    await tick(app)
    assert [len(reminders(app, card)), len(escalations(app, card))] == [2, 1]
    assert await remind_rows(app, inc) == ["reminder 1/2", "reminder 2/2", "escalated"]


async def test_ack_decision_silence_and_resolve_stop_reminders(
    start_app: AppFactory, emu: RunningEmulator
) -> None:
    """Without a routes file the defaults apply and the approvers are reminded."""
    emu.emulator.set_member(CHAT, CAROL)
    clock = Clock()
    app = await start_app(clock=clock, remind_after="10m", remind_every="5m", remind_max=3)
    rejected = await open_card(app, "crashloop-firing.json")
    resolved = await open_card(app, "single-firing.json")
    silenced = await open_card(app, "two-alerts-firing.json")
    acked = await open_card(app, "group-of-25-firing.json")
    control_body = fixture("crashloop-firing.json")
    for alert in control_body["alerts"]:
        alert["labels"]["alertname"] = "NobodyLooks"
        alert["fingerprint"] = alert["fingerprint"][::-1]
    control_body["groupLabels"]["alertname"] = "NobodyLooks"
    control_body["commonLabels"]["alertname"] = "NobodyLooks"
    control_body["groupKey"] = control_body["groupKey"] + "-nobody"
    control = await open_card(app, control_body)
    everyone = [rejected, resolved, silenced, acked, control]
    assert len({inc for inc, _ in everyone}) == 5

    clock.advance(minutes=10)
    await tick(app)
    assert [len(reminders(app, card)) for _, card in everyone] == [1] * 5
    text = reminders(app, control[1])[0]["text"]
    assert "reminder 1 of 3" in text and "111" in text and "222" in text  # the approvers

    async def press(message: dict[str, Any], word: str, user: dict[str, Any]) -> None:
        qid = app.em.press_button(CHAT, message["message_id"], app.button(message, word), user)
        await wait_for(lambda: app.em.callback_answer(qid), 15)
        await app.settled()

    await press(app.em.message(CHAT, rejected[1]["message_id"]), "Reject", ALICE)
    await app.alert("single-resolved.json")
    await press(app.em.message(CHAT, silenced[1]["message_id"]), "Silence", ALICE)
    # The reminder's own button acknowledges, by a member who is no approver.
    await press(reminders(app, acked[1])[0], "Ack", CAROL)
    assert "Acknowledged by @carol" in app.em.message(CHAT, acked[1]["message_id"])["text"]
    await app.settled()

    clock.advance(minutes=5)
    await tick(app)
    assert [len(reminders(app, card)) for _, card in everyone] == [1, 1, 1, 1, 2]

    # Given back, the incident is reminded again REMIND_AFTER later (not at once).
    await press(app.em.message(CHAT, acked[1]["message_id"]), "Unack", CAROL)
    await tick(app)
    assert len(reminders(app, acked[1])) == 1
    clock.advance(minutes=10)
    await tick(app)
    assert [len(reminders(app, card)) for _, card in everyone] == [1, 1, 1, 2, 3]
    assert "reminder 2 of 3" in reminders(app, acked[1])[1]["text"]
