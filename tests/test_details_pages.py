"""Details reaches every alert: the page under the head pages through all of them, both
ways, and every page fits Telegram's limit and parses, judged by TDLib, whatever the labels."""

from __future__ import annotations

from typing import Any

from harness import CHAT, MALLORY, Harness, fixture
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cards import make_alert, view
from test_fit import HOSTILE

from bot.cards.details import DETAILS_PAGE_ALERTS, DetailsMessage, details_page, render_details
from bot.cards.fit import MAX_TEXT
from bot.texts import utf16_len
from keyboards.callbacks import DetailsPageCB
from sandbox.emulator import wait_for
from sandbox.judge import check_message_text


def pressed(page: DetailsMessage, word: str) -> DetailsPageCB | None:
    """The data of the page's ◀️ (word 'Previous') or ▶️ ('Next') button, if it has one."""
    for row in page.keyboard:
        for b in row:
            if word in b["text"]:
                assert len(b["callback_data"].encode()) <= 64
                return DetailsPageCB.unpack(b["callback_data"])
    return None


def checked(text: str) -> str:
    parsed = check_message_text(text)  # TDLib's parser, then its length rule
    assert utf16_len(parsed.text) <= MAX_TEXT
    return parsed.text


def walk(v: Any, word: str, first: DetailsMessage) -> list[str]:
    """Every page from `first` on, following one button until it is gone."""
    texts, page = [checked(first.text)], first
    for _ in range(10_000):
        data = pressed(page, word)
        if data is None:
            return texts
        page = details_page(v, data.at, backwards=data.back)
        texts.append(checked(page.text))
    raise AssertionError("paging does not end")


def test_every_alert_of_a_hundred_is_on_some_page_both_ways() -> None:
    alerts = [make_alert(i) for i in range(100)]
    v = view(alerts=alerts)
    head, page, *_ = render_details(v)
    forward = [checked(head.text), *walk(v, "Next", page)]
    for i in range(100):
        assert any(f"cart-5d8f-{i}\n" in t + "\n" for t in forward), i
    assert len(forward) >= 100 // DETAILS_PAGE_ALERTS
    # From the last page back to the first: every alert again, the first page included.
    last = details_page(v, 10**6)
    backward = walk(v, "Previous", last)
    for i in range(100):
        assert any(f"cart-5d8f-{i}\n" in t + "\n" for t in backward), i
    assert pressed(details_page(v, 0), "Previous") is None


def test_a_page_past_the_end_is_the_last_page() -> None:
    v = view(alerts=[make_alert(i) for i in range(30)])
    last = details_page(v, 29)
    assert pressed(last, "Next") is None and "30 of 30" in last.text
    assert details_page(v, 500).text == details_page(v, 500, backwards=True).text


LABEL = st.one_of(HOSTILE, st.text(max_size=80))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(LABEL, min_size=1, max_size=4), n=st.integers(1, 40),
       start=st.integers(0, 45), back=st.booleans())
def test_details_pages_fit_and_parse_for_any_labels(values: list[str], n: int, start: int,
                                                   back: bool) -> None:
    def labels(i: int) -> dict[str, str]:
        out = {"alertname": values[0], "pod": f"{values[i % len(values)]}-{i}"}
        out.update({f"k{j}-{v[:30]}": v * (j + 1) for j, v in enumerate(values)})
        return out

    alerts = [make_alert(i, labels=labels(i), annotations={"summary": values[-1] * 5},
                         url=values[i % len(values)]) for i in range(n)]
    v = view(alerts=alerts)
    for message in render_details(v):
        checked(message.text)
    checked(details_page(v, start, backwards=back).text)


# ------------------------------------------------------------------ against the emulator


def hundred_pods() -> dict[str, Any]:
    payload = fixture("single-firing.json")
    one = payload["alerts"][0]
    payload["alerts"] = [
        {**one, "fingerprint": f"{i:016x}", "labels": {**one["labels"], "pod": f"pod-{i}"}}
        for i in range(100)]
    return payload


async def test_details_pages_reach_every_alert_of_a_hundred(app: Harness) -> None:
    status, body = await app.post("/alerts/alertmanager", hundred_pods())
    assert status == 200, body
    card = await app.wait_card()
    await app.settled()
    await app.press(card["message_id"], "Details", MALLORY)  # Details is open to anyone
    await app.settled()
    replies = app.replies_to(card["message_id"])
    page = next(m for m in replies if pager(m))
    seen = {text for m in replies for text in pods_in(m["text"])}
    for _ in range(100):
        if not any("Next" in b["text"] for row in pager(page) for b in row):
            break
        edits = page["edit_count"]
        qid = await app.press(page["message_id"], "Next", MALLORY)
        assert app.em.callback_answer(qid)["show_alert"] is not True
        await app.settled()
        page = app.em.message(CHAT, page["message_id"])
        assert page["edit_count"] == edits + 1
        seen |= pods_in(page["text"])
    assert seen == {f"pod-{i}" for i in range(100)}
    # The same data forged onto the card: refused, and the card is left alone.
    before = app.em.message(CHAT, card["message_id"])
    data = DetailsPageCB(inc=pager_incident(page), at=0).pack()
    qid = app.em.press_button(CHAT, card["message_id"], data, MALLORY, force=True)
    await wait_for(lambda: app.em.callback_answer(qid), 15)
    assert app.em.callback_answer(qid)["show_alert"] is True
    await app.settled()
    assert app.em.message(CHAT, card["message_id"])["text"] == before["text"]
    assert ("details_page", "wrong_message") in {(r["action"], r["result"])
                                                 for r in await app.audit()}


def pager(message: dict[str, Any]) -> list[list[dict[str, Any]]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [row for row in rows if any(b.get("callback_data", "").startswith("d1:")
                                       for b in row)]


def pager_incident(message: dict[str, Any]) -> str:
    return next(DetailsPageCB.unpack(b["callback_data"]).inc for row in pager(message)
                for b in row)


def pods_in(text: str) -> set[str]:
    return {word for line in text.splitlines() if line.startswith("pod: ")
            for word in [line.removeprefix("pod: ").strip()]}
