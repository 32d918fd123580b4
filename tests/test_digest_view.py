"""The storm digest's view: whatever the label text, every page fits one Telegram message and
parses (judged by TDLib), its buttons' data fits 64 bytes, and paging reaches every incident,
the ones waiting for their own card first."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from factories import T0, UTC_TZ, make_incident
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fit import HOSTILE

from bot.cards.digest import DIGEST_PAGE_SIZE, DigestView, render_digest
from bot.cards.fit import MAX_TEXT
from bot.texts import utf16_len
from keyboards.callbacks import DigestOpenCB, DigestPageCB
from sandbox.judge import check_message_text
from storage.repo.digests import DigestRow, Entry, Listed

LOCALES = ["en", "zh-TW"]
MARKS = ("🔴", "🟠", "🔵", "⚪")  # a page's rows start with their severity's mark


def digest(page: int = 0, ended: bool = False) -> DigestRow:
    return DigestRow(id=7, chat_id=-100, started_at=T0,
                     ended_at=T0 + timedelta(minutes=12) if ended else None, drain_at=0.0,
                     message_id=None, last_rendered_hash=None, page=page)


def entry(i: int, *, held: bool = True, urgent: bool = False, **incident: object) -> Entry:
    return Entry(Listed.of(make_incident(i, **incident)), held=held, urgent=urgent,
                 message_id=None if held else 100 + i)


def pages(view: DigestView) -> list[tuple[str, list[list[dict]]]]:
    """Every page, following ▶️ from the first."""
    out, page = [], 0
    while True:
        card = render_digest(replace(view, digest=replace(view.digest, page=page)))
        parsed = check_message_text(card.text)
        assert utf16_len(parsed.text) <= MAX_TEXT
        for row in card.keyboard:
            for b in row:
                assert len(b["callback_data"].encode()) <= 64
        out.append((parsed.text, card.keyboard))
        nxt = [DigestPageCB.unpack(b["callback_data"]).page for row in card.keyboard
               for b in row if b["callback_data"].startswith("g1:")]
        if not nxt or max(nxt) <= page:
            return out
        page = max(nxt)


@pytest.mark.parametrize("locale", LOCALES)
def test_paging_reaches_every_incident_flagged_first(locale: str) -> None:
    entries = [entry(i, severity="warning") for i in range(30)]
    entries += [entry(30 + i, severity="critical", urgent=True) for i in range(3)]
    entries += [entry(40 + i, held=False) for i in range(4)]
    shown = pages(DigestView(digest(), entries, UTC_TZ, locale))
    assert len(shown) == -(-len(entries) // DIGEST_PAGE_SIZE)
    rows = [line for t, _ in shown for line in t.splitlines() if line.startswith(MARKS)]
    for e in entries:
        assert sum(e.incident.id in line for line in rows) == 1
    first, keyboard = shown[0]
    # The critical ones waiting for their card: at the top, and first on the first page.
    top = first.split("\n\n")[1]
    assert all(f"INC-{30 + i:06d}" in top for i in range(3))
    opens = [DigestOpenCB.unpack(b["callback_data"]).inc for row in keyboard for b in row
             if b["callback_data"].startswith("g2:")]
    assert set(opens[:3]) == {f"INC-{30 + i:06d}" for i in range(3)}
    # Incidents with their own card have no open button.
    every_open = {DigestOpenCB.unpack(b["callback_data"]).inc for _, kb in shown for row in kb
                  for b in row if b["callback_data"].startswith("g2:")}
    assert every_open == {e.incident.id for e in entries if e.held}


@pytest.mark.parametrize("locale", LOCALES)
def test_the_end_gives_the_totals(locale: str) -> None:
    entries = [entry(i, held=i % 2 == 0, status="resolved" if i < 3 else "firing")
               for i in range(10)]
    text = pages(DigestView(digest(ended=True), entries, UTC_TZ, locale))[0][0]
    assert "10" in text and "13:19" in text
    if locale == "en":
        assert "Storm over" in text and "5 got a card of their own, 5 only listed here" in text
        assert "3 resolved" in text


@pytest.mark.parametrize(("count", "listed"), [(20, 20), (300, 300), (400, 200)])
def test_every_id_is_in_the_message_while_they_fit(count: int, listed: int) -> None:
    entries = [entry(i) for i in range(count)]
    text = pages(DigestView(digest(), entries, UTC_TZ))[0][0]
    line = next(ln for ln in text.splitlines() if ln.startswith("INC-"))
    assert len(line.split(" … ")[0].split()) == listed
    assert (f"… {count - listed} more" in line) == (listed < count)


def test_a_page_past_the_end_shows_the_last() -> None:
    entries = [entry(i) for i in range(10)]
    last = render_digest(DigestView(digest(page=99), entries, UTC_TZ))
    assert "page 2/2" in last.text


LABEL = st.one_of(HOSTILE, st.text(max_size=120))


@settings(max_examples=40, deadline=None)
@given(values=st.lists(LABEL, min_size=1, max_size=6), n=st.integers(1, 60),
       locale=st.sampled_from(LOCALES), ended=st.booleans())
def test_digest_pages_fit_and_parse_for_any_labels(values: list[str], n: int, locale: str,
                                                   ended: bool) -> None:
    def value(i: int, k: int) -> str:
        return values[(i + k) % len(values)] * (1 + i % 3)

    entries = [entry(i, held=i % 3 != 0, urgent=i % 4 == 0, title=value(i, 0),
                     alertname=value(i, 1), namespace=value(i, 2), severity=value(i, 3),
                     target=value(i, 4))
               for i in range(n)]
    shown = pages(DigestView(digest(ended=ended), entries, UTC_TZ, locale))
    text = "\n".join(t for t, _ in shown)
    assert all(e.incident.id in text for e in entries)
