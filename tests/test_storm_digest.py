"""Storm mode against the emulator with Telegram's flood control on, scaled in time (same
shape, a 3 s group window): a storm into one chat gets one digest message edited in place,
critical incidents their own card up to the cap and the rest flagged, paging reaches every
incident, an open button posts that card, the storm's end gives the totals; with storm mode
off every incident gets its own card."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from harness import CHAT, MALLORY, AppFactory, Harness, fixture, now

from keyboards.callbacks import DigestOpenCB, DigestPageCB
from sandbox.emulator import FloodLimits, wait_for
from sandbox.judge import check_message_text
from storage import repo
from storage.db import Database
from storage.repo import digests as digest_rows
from storage.repo.sql import fetch_all

SPEED = 20.0  # every period divided by this: Telegram's 60 s group window is 3 s
INCIDENTS = 25
CRITICAL = 2  # then two critical ones
RISKY = 2  # and two whose proposal (a rollback) waits for a decision at high risk
OWN_CARDS = 3  # a chat's own cards during the storm (per minute: no more in this test)


def storm_settings(backlog: str) -> dict[str, Any]:
    return dict(
        telegram_pacing=True,
        telegram_group_rate=f"20/{60 / SPEED}",
        telegram_group_burst=f"3/{3 / SPEED}",
        telegram_private_rate=f"3/{3 / SPEED}",
        telegram_global_rate=f"30/{1 / SPEED}",
        # A new card takes 3/17 s here: a backlog of more than five starts the storm.
        storm_backlog=backlog,
        storm_own_cards=f"{OWN_CARDS}/1m",
    )


async def storm(h: Harness, *, digest: bool = True) -> None:
    """INCIDENTS new incidents at once, then, once the storm is on, CRITICAL critical ones and
    RISKY ones the rules answer with a rollback (high risk)."""

    async def one(i: int, severity: str = "warning", alertname: str = "") -> None:
        payload = fixture("single-firing.json")
        payload["groupKey"] = f"storm-{i}"
        alert = payload["alerts"][0]
        alert["fingerprint"] = f"{i:016x}"
        alert["labels"].update(service=f"svc-{i}", alertname=alertname or f"Storm{i % 3}",
                               severity=severity)
        status, body = await h.post("/alerts/alertmanager", json.loads(json.dumps(payload)))
        assert status == 200, body

    await asyncio.gather(*(one(i) for i in range(INCIDENTS)))
    # The storm is on once its digest is posted (ahead of the cards kept from before it).
    if digest:
        await wait_for(lambda: digests(h), 30, message="no digest message")
    await asyncio.gather(*(one(INCIDENTS + i, "critical") for i in range(CRITICAL)),
                         *(one(INCIDENTS + CRITICAL + i, "warning", "HighErrorRate")
                           for i in range(RISKY)))


def writes(h: Harness) -> list[dict[str, Any]]:
    return [c for c in h.em.calls() if c["method"] in ("sendMessage", "editMessageText")
            and str(c["params"].get("chat_id")) == str(CHAT)]


def digests(h: Harness) -> list[dict[str, Any]]:
    return [m for m in h.bot_messages() if m["text"].startswith(("🌪", "🌤"))]


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
            for b in row]


def data_of(message: dict[str, Any], prefix: str) -> list[str]:
    return [b["callback_data"] for b in buttons(message)
            if b.get("callback_data", "").startswith(prefix)]


async def rows(h: Harness, sql: str) -> list[Any]:
    async with h.db.read() as conn:
        return await fetch_all(conn, sql)


async def test_a_storm_goes_into_one_digest(start_app: AppFactory) -> None:
    h = await start_app(**storm_settings("1s"))
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    await storm(h)
    digest = await wait_for(lambda: next(iter(digests(h)), None), 30,
                            message="no digest message")
    # The storm ends when what it held back would have been sent by now: the digest says so.
    await wait_for(lambda: "Storm over" in h.em.message(CHAT, digest["message_id"])["text"], 30,
                   message="the storm did not end")
    await h.settled(timeout=30)
    assert [c for c in writes(h) if c["error_code"] == 429] == []
    assert len(digests(h)) == 1  # one message, edited in place
    final = h.em.message(CHAT, digest["message_id"])
    assert final["edit_count"] >= 1
    check_message_text(final["html"])

    everyone = {r[0] for r in await rows(h, "SELECT id FROM incidents")}
    listed = await rows(h, "SELECT incident_id, held, own_at, message_id FROM cards "
                           "WHERE digest_id IS NOT NULL")
    held = {r[0] for r in listed if r[1]}
    assert held, "nothing was held back"
    assert f"{len(listed)} incidents" in final["text"]  # the totals
    # Critical incidents and high-risk decisions got their own card, up to the cap (all of
    # it: four wanted one); the one left waits, flagged at the top.
    severities = dict(await rows(h, "SELECT id, severity FROM incidents"))
    names = dict(await rows(h, "SELECT id, alertname FROM incidents"))
    urgent = {i for i in everyone
              if severities[i] == "critical" or names[i] == "HighErrorRate"}
    own = {r[0] for r in listed if r[2] is not None}
    assert len(own) == OWN_CARDS and own <= urgent
    flagged = urgent - own
    assert len(flagged) == 1 and flagged <= held
    assert "Waiting for their own card" in final["text"]
    assert all(i in final["text"].split("Incidents")[0] for i in flagged)
    # Nothing of a held incident reached the chat but the digest.
    carded = {i for c in h.cards() for i in ids_in(c["text"])}
    assert not held & carded

    # Paging reaches every incident the digest lists; with the cards, every incident.
    assert set(ids_in(final["text"])) >= {r[0] for r in listed}  # all ids fit the message
    seen = set(row_ids(final["text"]))
    message = final
    for _ in range(INCIDENTS + CRITICAL + RISKY):
        nxt = [d for d in data_of(message, "g1:")
               if DigestPageCB.unpack(d).page > current_page(message)]
        if not nxt:
            break
        message = await press_and_wait_edit(h, message, nxt[0])
        check_message_text(message["html"])
        seen |= set(row_ids(message["text"]))
    assert {r[0] for r in listed} <= seen
    assert everyone <= seen | carded

    # Opening a held incident's card from the digest posts that card.
    opening = next(d for d in data_of(message, "g2:"))
    incident = DigestOpenCB.unpack(opening).inc
    qid = h.em.press_button(CHAT, message["message_id"], opening, MALLORY)
    answer = await wait_for(lambda: h.em.callback_answer(qid), 15)
    assert incident in answer["text"] and not answer.get("show_alert")
    await h.wait_card(lambda m: incident in m["text"])
    # Pressed again (a keyboard from before the edit): its card is already there.
    qid = h.em.press_button(CHAT, message["message_id"], opening, MALLORY, force=True)
    again = await wait_for(lambda: h.em.callback_answer(qid), 15)
    assert again.get("show_alert") and "already" in again["text"]
    # A digest button forged onto a card is refused and changes nothing.
    card = h.cards()[0]
    forged = DigestOpenCB(dig=DigestOpenCB.unpack(opening).dig, inc=incident).pack()
    qid = h.em.press_button(CHAT, card["message_id"], forged, MALLORY, force=True)
    refused = await wait_for(lambda: h.em.callback_answer(qid), 15)
    assert refused.get("show_alert") and "does not belong" in refused["text"]
    await h.settled(timeout=30)
    results = {(r["action"], r["result"]) for r in await h.audit()}
    assert {("open_card", "posted"), ("open_card", "already_posted"),
            ("open_card", "wrong_message"), ("digest_page", "ok")} <= results
    assert [c for c in writes(h) if c["error_code"] == 429] == []


async def test_storm_mode_off_gives_every_incident_its_own_card(start_app: AppFactory
                                                                ) -> None:
    h = await start_app(**storm_settings("0"))
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))
    await storm(h, digest=False)
    await wait_for(lambda: len(h.cards()) == INCIDENTS + CRITICAL + RISKY, 60,
                   message="not every card arrived")
    await h.settled(timeout=30)
    assert digests(h) == []
    assert [c for c in writes(h) if c["error_code"] == 429] == []


async def press_and_wait_edit(h: Harness, message: dict[str, Any], data: str
                              ) -> dict[str, Any]:
    """Press one of the message's buttons; the message once the bot has edited it."""
    edits, message_id = message["edit_count"], message["message_id"]
    qid = h.em.press_button(CHAT, message_id, data, MALLORY)
    await wait_for(lambda: h.em.callback_answer(qid), 15)
    await wait_for(lambda: h.em.message(CHAT, message_id)["edit_count"] > edits, 15)
    return h.em.message(CHAT, message_id)


def ids_in(text: str) -> list[str]:
    return [w.strip(",.·") for w in text.split() if w.startswith("INC-")]


def row_ids(text: str) -> list[str]:
    """The ids of the page's rows (each starts with its severity's mark)."""
    return [i for line in text.splitlines() if line.startswith(("🔴", "🟠", "🔵", "⚪"))
            for i in ids_in(line)]


def current_page(message: dict[str, Any]) -> int:
    """The 0-based page the digest shows, from its 'page N/M' line."""
    for line in message["text"].splitlines():
        if "page " in line:
            return int(line.rsplit("page ", 1)[1].split("/")[0]) - 1
    return 0


async def test_a_group_upgraded_during_a_storm_moves_its_digest(tmp_path: Path) -> None:
    db = Database(tmp_path / "move.db")
    await db.open()
    try:
        async with db.write() as conn:
            going = await digest_rows.start_digest(conn, CHAT, now(), 0.0)
            await digest_rows.save_message(conn, going, 42, "x")
            over = await digest_rows.start_digest(conn, -5, now(), 0.0)
            await digest_rows.end_digest(conn, over, now())
            await repo.move_chat(conn, CHAT, -100999)
            await repo.move_chat(conn, -5, -100998)
        async with db.read() as conn:
            moved = await digest_rows.get_digest(conn, going)
            ended = await digest_rows.get_digest(conn, over)
        # Posted again in the supergroup (the old group's messages cannot be edited).
        assert moved is not None and (moved.chat_id, moved.message_id) == (-100999, None)
        assert ended is not None and ended.chat_id == -5  # an ended storm stays where it was
    finally:
        await db.close()


async def test_incidents_held_later_show_before_the_cards_the_storm_kept(
        start_app: AppFactory) -> None:
    """A later render of the digest lists what no other message shows: it goes ahead of the
    cards the storm kept from before it (the digest lists those already), not after them."""
    # 5 s of cards at 3/17 s each: the storm keeps 28, more than a window's 17 new writes
    # (due at once: none waits for its proposal).
    h = await start_app(**storm_settings("5s"), first_card_wait=0)
    h.em.set_rate_limits(True, FloodLimits().scaled(SPEED))

    async def one(key: str, i: int) -> None:
        payload = fixture("single-firing.json")
        payload["groupKey"] = key
        alert = payload["alerts"][0]
        alert["fingerprint"] = f"{i:016x}"
        alert["labels"].update(service=f"svc-{i}", alertname=f"Storm{i % 3}",
                               severity="warning")
        status, body = await h.post("/alerts/alertmanager", json.loads(json.dumps(payload)))
        assert status == 200, body

    await asyncio.gather(*(one(f"storm-{i}", i) for i in range(40)))
    digest = await wait_for(lambda: next(iter(digests(h)), None), 30,
                            message="no digest message")
    await asyncio.gather(*(one(f"late-{i}", 100 + i) for i in range(3)))
    late = {r[0] for r in await rows(h, "SELECT incident_id FROM alerts WHERE fingerprint IN "
                                        f"('{100:016x}', '{101:016x}', '{102:016x}')")}
    assert len(late) == 3

    async def kept_unsent() -> tuple[int] | None:
        """Kept cards not sent yet, once the digest lists every late incident."""
        if not late <= set(ids_in(h.em.message(CHAT, digest["message_id"])["text"])):
            return None
        count = await rows(h, "SELECT COUNT(*) FROM cards WHERE digest_id IS NOT NULL "
                              "AND held = 0 AND own_at IS NULL AND message_id IS NULL")
        return (int(count[0][0]),)

    (unsent,) = await wait_for(kept_unsent, 30, message="the late incidents never showed")
    assert unsent > 0, "the late incidents waited for the whole kept backlog"
    await h.settled(timeout=30)
    assert [c for c in writes(h) if c["error_code"] == 429] == []
