"""Reminders that escalate, on a controlled clock, through the real app and emulator.

The app's clock is injected; the tests move it and run the timers' tick themselves (the
background tick reads the same clock, so it can only do the same work, never more). The
clock stays behind real time: delivery schedules its rows on the wall clock.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import ALICE, CAROL, CHAT, AppFactory, Harness, fixture
from pg import sqlite_only

from sandbox.emulator import wait_for
from sandbox.server import RunningEmulator
from storage.db import _migrations, _split_sql, known_schema_version


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
    # Five due at once, and not more than REMIND_BATCH_OVER: one reminder each.
    app = await start_app(clock=clock, remind_after="10m", remind_every="5m", remind_max=3,
                          remind_batch_over=5)
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


def group_body(name: str, starts_at: datetime | None = None) -> dict[str, Any]:
    """crashloop-firing.json as another alert group (its own incident), alertname `name`."""
    body = fixture("crashloop-firing.json")
    for alert in body["alerts"]:
        alert["labels"]["alertname"] = name
        alert["fingerprint"] = f"{name}-{alert['fingerprint']}"[:64]
        if starts_at is not None:
            alert["startsAt"] = starts_at.isoformat().replace("+00:00", "Z")
    body["groupLabels"]["alertname"] = name
    body["commonLabels"]["alertname"] = name
    body["groupKey"] = body["groupKey"] + f"-{name}"
    return body


def batches(h: Harness) -> list[dict[str, Any]]:
    """Reminders that list several incidents: plain messages, not replies to a card."""
    return [m for m in h.bot_messages() if m["text"].startswith("🔔")
            and not m.get("reply_to_message")]


def thread_notes(h: Harness, cards: list[dict[str, Any]]) -> list[int]:
    return [len(reminders(h, card)) + len(escalations(h, card)) for card in cards]


async def test_a_storm_of_due_reminders_is_one_message_per_chat(
    start_app: AppFactory, emu: RunningEmulator, tmp_path: Path
) -> None:
    emu.emulator.set_member(CHAT, CAROL)
    clock = Clock()
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.format(chat=CHAT))
    app = await start_app(routes_path=str(routes), clock=clock)  # REMIND_BATCH_OVER=3
    opened = [await open_card(app, group_body(f"Storm{n}")) for n in range(5)]
    incs, cards = [inc for inc, _ in opened], [card for _, card in opened]

    clock.advance(minutes=10)
    await tick(app)
    (first,) = batches(app)
    text = first["text"]
    assert text.startswith("🔔 5 incidents still firing and nobody is on them")
    assert all(inc in text for inc in incs)
    assert text.count("reminder 1 of 2") == 5
    # Each person once, the id as a mention of that user.
    assert text.count("@oncall_one") == 1
    assert [e["user"]["id"] for e in first["entities"] if e["type"] == "text_mention"] == [555]
    # Every incident's id links to its card.
    links = {e["url"] for e in first["entities"] if e["type"] == "text_link"}
    assert links == {f"https://t.me/c/{-CHAT - 10**12}/{c['message_id']}" for c in cards}
    assert thread_notes(app, cards) == [0] * 5

    # Acknowledged, one drops out; the others' second reminder is again one message.
    qid = app.em.press_button(CHAT, cards[0]["message_id"], app.button(cards[0], "Ack"), CAROL)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    await app.settled()
    clock.advance(minutes=5)
    await tick(app)
    second = batches(app)[1]["text"]
    assert second.startswith("🔔 4 incidents") and incs[0] not in second
    assert second.count("reminder 2 of 2") == 4

    # The batch counted against REMIND_MAX: next comes the escalation, one message too.
    clock.advance(minutes=5)
    await tick(app)
    (*_, third) = batches(app)
    assert third["text"].count("📣 escalated after 2 reminders") == 4
    assert third["text"].count("@team_lead") == 1 and "@oncall_one" not in third["text"]
    clock.advance(minutes=30)
    await tick(app)
    assert len(batches(app)) == 3 and thread_notes(app, cards) == [0] * 5
    assert await remind_rows(app, incs[0]) == ["reminder 1/2"]
    for inc in incs[1:]:
        assert await remind_rows(app, inc) == ["reminder 1/2", "reminder 2/2", "escalated"]


def to_schema_4(path: Path) -> None:
    """The app's incidents, alerts, cards and decisions in a database as opsgate wrote it
    before reminders existed: migrations 1-4 only, the columns schema 4 had."""
    newer = path.with_name("newer.db")
    conn = sqlite3.connect(path)
    conn.execute("VACUUM INTO ?", (str(newer),))
    conn.close()
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    for version, _, sql in _migrations()[:4]:
        for statement in _split_sql(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={version}")
    conn.execute("ATTACH ? AS newer", (str(newer),))
    for table in ("incidents", "alerts", "cards", "decisions"):
        old = {r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")}
        now = {r[1] for r in conn.execute(f"PRAGMA newer.table_info({table})")}
        columns = ", ".join(sorted(old & now))
        conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM newer.{table}")
    conn.commit()
    conn.execute("DETACH newer")
    conn.close()


@sqlite_only("a database written by a version from before the PostgreSQL backend")
async def test_incidents_open_before_reminders_existed_get_them_after_the_upgrade(
    start_app: AppFactory, tmp_path: Path
) -> None:
    clock = Clock()
    routes = tmp_path / "routes.toml"
    routes.write_text(ROUTES.format(chat=CHAT))
    app = await start_app(routes_path=str(routes), clock=clock)
    inc, card = await open_card(app, group_body("BeforeUpgrade", starts_at=clock.now))
    gone, gone_card = await open_card(app, "single-firing.json")
    await app.alert("single-resolved.json")
    await app.settled()
    await app.app.stop()
    to_schema_4(tmp_path / "opsgate.db")

    clock.advance(minutes=9)
    app = await start_app(routes_path=str(routes), clock=clock)
    async with app.db.read() as conn:
        async with conn.execute("PRAGMA user_version") as cur:
            assert (await cur.fetchone())[0] == known_schema_version()
    await tick(app)
    assert reminders(app, card) == []  # due REMIND_AFTER after it opened, not at once
    clock.advance(minutes=1)
    await tick(app)
    (first,) = reminders(app, card)
    assert "reminder 1 of 2" in first["text"] and "@oncall_one" in first["text"]
    # Scheduled once: another start-up finds the schedule and adds nothing.
    await app.app.stop()
    app = await start_app(routes_path=str(routes), clock=clock)
    await tick(app)
    assert len(reminders(app, card)) == 1
    clock.advance(minutes=5)
    await tick(app)
    assert len(reminders(app, card)) == 2
    assert reminders(app, gone_card) == []
    assert await remind_rows(app, inc) == ["reminder 1/2", "reminder 2/2"]
    assert await remind_rows(app, gone) == []
