"""bot.cards.fit and the clip filters, judged by TDLib: whatever the input, a fitted text
measures at most its limit by Telegram's own count, and `measure` never counts less."""

from __future__ import annotations

import html

from factories import UTC_TZ, make_incident
from hypothesis import given
from hypothesis import strategies as st
from test_cards import hostile_view

from bot.cards import card as cards
from bot.cards.fit import MAX_TEXT, Limits, fit, measure, tidy
from bot.texts import clip, clip_tail, line, render
from sandbox.judge import check_message_text, fix_text, parse
from sandbox.telegram_html import utf16_len

# Hostile text: any valid code point (no lone surrogates: those cannot reach Telegram),
# weighted towards what breaks counting: astral emoji, ZWJ sequences, CJK, HTML specials.
SPECIAL = st.sampled_from(
    ["😀", "👩‍👩‍👧‍👦", "中", "文", "<", ">", "&", '"', "'", "&amp;", "&#39;", "&nbsp;",
     " ", "\n", "\t", "\u3000", "\u2028", "\r", "🔴"]
)
CHARS = st.characters(blacklist_categories=("Cs",))
HOSTILE = st.lists(st.one_of(SPECIAL, CHARS), max_size=400).map("".join)


def telegram_count(html_text: str) -> int:
    """TDLib's parse and clean-up, then UTF-16 code units (the 4096 rule's unit)."""
    return utf16_len(fix_text(parse(html_text)).text)


@given(value=HOSTILE, limit=st.integers(0, 300))
def test_clipped_values_show_at_most_limit_units(value: str, limit: int) -> None:
    for clipped in (clip(value, limit), clip_tail(value, limit), line(value, limit)):
        shown = html.escape(clipped)
        assert telegram_count(shown) <= limit
        assert utf16_len(clipped) <= limit


@given(value=HOSTILE.filter(lambda v: len(v) > 3))
def test_clip_keeps_whole_characters(value: str) -> None:
    # a surrogate pair is never split: the clipped value re-encodes as UTF-8
    for limit in range(1, 8):
        clip(value, limit).encode("utf-8")
        clip_tail(value, limit).encode("utf-8")


TAGS = st.sampled_from(["b", "i", "u", "s", "code", "pre", "tg-spoiler", "blockquote"])


@st.composite
def markup(draw: st.DrawFn, depth: int = 0) -> str:
    """Balanced Telegram HTML with escaped hostile text (what templates produce)."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        if depth < 2 and draw(st.booleans()):
            tag = draw(TAGS)
            inner = draw(markup(depth + 1))
            parts.append(f"<{tag}>{inner}</{tag}>")
        else:
            parts.append(html.escape(draw(HOSTILE)))
    return "".join(parts)


@given(text=markup())
def test_measure_never_counts_less_than_telegram(text: str) -> None:
    assert measure(text) >= telegram_count(text)


@given(value=HOSTILE, budget=st.integers(50, MAX_TEXT))
def test_fit_is_within_budget_by_tdlib_count(value: str, budget: int) -> None:
    def draw(lim: Limits) -> str:
        return render("thread/outcome.html", succeeded=False, dry_run=False,
                      effect=value * 3, output=value * 20, error=value)

    try:
        text = fit(draw, budget)
    except ValueError:
        return  # nothing fits this budget: fit says so instead of returning too much
    assert telegram_count(text) <= budget
    assert measure(text) <= budget


@given(output=HOSTILE, effect=HOSTILE, error=HOSTILE, locale=st.sampled_from(["en", "zh-TW"]))
def test_outcome_note_fits_whatever_the_output(
    output: str, effect: str, error: str, locale: str
) -> None:
    for repeat in (1, 30):
        text = cards.render_thread(
            "outcome", tz=UTC_TZ, locale=locale, incident=make_incident(), succeeded=False,
            dry_run=False, effect=effect * repeat, output=output * repeat, error=error * repeat,
        )
        assert utf16_len(check_message_text(text).text) <= MAX_TEXT


@given(value=HOSTILE, locale=st.sampled_from(["en", "zh-TW"]))
def test_card_fits_whatever_the_labels(value: str, locale: str) -> None:
    card = cards.render_card(hostile_view(value * 10, locale=locale))
    assert utf16_len(check_message_text(card.text).text) <= MAX_TEXT
    assert "could not be shown" not in card.text  # the real card, not the fallback


def test_three_thousand_emoji_fit_the_outcome_note() -> None:
    text = cards.render_thread("outcome", tz=UTC_TZ, incident=make_incident(), succeeded=True,
                               dry_run=False, effect="kubectl x", output="😀" * 3000, error="")
    parsed = check_message_text(text)
    assert utf16_len(parsed.text) <= MAX_TEXT
    assert parsed.text.endswith("😀" * 100)


def test_measure_counts_utf16_units_after_parsing() -> None:
    assert measure("<b>😀</b>") == 2
    assert measure("&lt;&amp;&#39;") == 3
    assert measure("&nbsp;") == 6  # not a reference TDLib decodes
    assert measure("  <b> x</b>  \n") == 2  # spaces inside the entity are kept
    assert tidy("a  \n\n\n\nb ") == "a\n\nb"
