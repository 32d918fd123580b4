"""Telegram HTML parse_mode, checked against the documented tags, limits and error texts."""

from __future__ import annotations

import pytest

from sandbox.judge import check_message_text
from sandbox.telegram_html import HtmlParseError, parse_html, utf16_len

PREFIX = "Bad Request: can't parse entities: "


@pytest.mark.parametrize(
    ("html", "text", "entities"),
    [
        ("<b>b</b><strong>s</strong>", "bs", [("bold", 0, 1), ("bold", 1, 1)]),
        ("<i>i</i><em>e</em>", "ie", [("italic", 0, 1), ("italic", 1, 1)]),
        ("<u>u</u><ins>n</ins>", "un", [("underline", 0, 1), ("underline", 1, 1)]),
        (
            "<s>s</s><strike>t</strike><del>d</del>",
            "std",
            [("strikethrough", 0, 1), ("strikethrough", 1, 1), ("strikethrough", 2, 1)],
        ),
        (
            '<span class="tg-spoiler">x</span><tg-spoiler>y</tg-spoiler>',
            "xy",
            [("spoiler", 0, 1), ("spoiler", 1, 1)],
        ),
        ("<code>c</code>", "c", [("code", 0, 1)]),
        ("<pre>p</pre>", "p", [("pre", 0, 1)]),
        ("<blockquote>q</blockquote>", "q", [("blockquote", 0, 1)]),
        ("<blockquote expandable>q</blockquote>", "q", [("expandable_blockquote", 0, 1)]),
        ("<b>bold <i>both</i></b> x", "bold both x", [("bold", 0, 9), ("italic", 5, 4)]),
        ("<B>upper</B>", "upper", [("bold", 0, 5)]),
        ("<b></b>x", "x", []),  # empty entities are dropped
    ],
)
def test_supported_tags(html: str, text: str, entities: list[tuple[str, int, int]]) -> None:
    parsed = parse_html(html)
    assert parsed.text == text
    assert [(e["type"], e["offset"], e["length"]) for e in parsed.entities] == entities


def test_link_emoji_time_and_pre_language() -> None:
    parsed = parse_html(
        '<a href="https://example.com/?a=1&amp;b=2">l</a>'
        "<a href='https://example.org'>m</a>"
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
        '<tg-time unix="1647531900" format="wDT">t</tg-time>'
        '<pre><code class="language-python">x = 1</code></pre>'
    )
    assert parsed.text == "lm👍tx = 1"
    assert parsed.entities == [
        {"type": "text_link", "offset": 0, "length": 1, "url": "https://example.com/?a=1&b=2"},
        {"type": "text_link", "offset": 1, "length": 1, "url": "https://example.org"},
        {
            "type": "custom_emoji",
            "offset": 2,
            "length": 2,
            "custom_emoji_id": "5368324170671202286",
        },
        {
            "type": "date_time",
            "offset": 4,
            "length": 1,
            "unix_time": 1647531900,
            "date_time_format": "wDT",
        },
        {"type": "pre", "offset": 5, "length": 5, "language": "python"},
    ]


def test_offsets_are_utf16_with_emoji_and_astral_characters() -> None:
    parsed = parse_html("🔴 <b>CRITICAL</b> · <i>ü😀x</i>")
    assert parsed.text == "🔴 CRITICAL · ü😀x"
    # 🔴 and 😀 are two UTF-16 code units each
    assert [(e["type"], e["offset"], e["length"]) for e in parsed.entities] == [
        ("bold", 3, 8),
        ("italic", 14, 4),
    ]
    assert utf16_len("🔴") == 2
    assert utf16_len("ü") == 1


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("&lt;&gt;&amp;&quot;", '<>&"'),
        ("&#65;&#x42;&#x1F600;", "AB😀"),
        ("a&nbsp;b", "a&nbsp;b"),  # unknown named entity passes through literally
        ("&copy; &unknown;", "&copy; &unknown;"),
        ("fish & chips", "fish & chips"),  # a lone & is literal text
        ("a > b", "a > b"),
    ],
)
def test_entities(html: str, text: str) -> None:
    assert parse_html(html).text == text


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<x>bad</x>", 'Unsupported start tag "x" at byte offset 0'),
        ("ok <br>", 'Unsupported start tag "br" at byte offset 3'),
        ("é<p>", 'Unsupported start tag "p" at byte offset 2'),  # offsets are bytes
        ("a < b", 'Unsupported start tag "" at byte offset 2'),  # stray <
        ("<b", "Unclosed start tag at byte offset 0"),
        ('<a href="x', "Unclosed start tag at byte offset 0"),
        (
            "<b>x</i>",
            'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"',
        ),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<span class="red">x</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<b>never closed", 'Can\'t find end tag corresponding to start tag "b"'),
    ],
)
def test_invalid_markup(html: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as info:
        parse_html(html)
    assert info.value.description == PREFIX + error
    assert isinstance(info.value, ValueError)


def test_blockquotes_may_nest_as_in_tdlib() -> None:
    # TDLib 1.8.69's parser accepts them (the differential test holds the fallback to it)
    parsed = parse_html("<blockquote>a<blockquote>b</blockquote></blockquote>")
    assert parsed.text == "ab"


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<tg-emoji>x</tg-emoji>", "Invalid custom emoji identifier specified"),
        ('<tg-emoji emoji-id="007">x</tg-emoji>', "Invalid custom emoji identifier specified"),
        ('<tg-time unix="5" format="rt">t</tg-time>', "Invalid date format used"),
        ("<b>&#xD800;</b>", "Text contains invalid Unicode characters after decoding HTML "
         "entities, check for unmatched surrogate code units"),
        ("<b x", 'Unclosed start tag "b" at byte offset 0'),
        ("<b />", 'Empty attribute name in the tag "b" at byte offset 0'),
    ],
)
def test_refusals_tdlib_makes(html: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as info:
        parse_html(html)
    assert info.value.description == PREFIX + error


def test_formatting_inside_code_is_dropped() -> None:
    parsed = parse_html("<code>a<b>b</b></code>")
    assert [e["type"] for e in parsed.entities] == ["code"]


def test_empty_text() -> None:
    for html in ("", "   \n ", "<b> </b>", "<i></i>"):
        with pytest.raises(HtmlParseError) as info:
            check_message_text(html)
        assert info.value.description == "Bad Request: message text is empty"


def test_whitespace_is_trimmed_and_entities_shift() -> None:
    parsed = check_message_text("\n  <b>hi</b> there  \n")
    assert parsed.text == "hi there"
    assert parsed.entities == [{"type": "bold", "offset": 0, "length": 2}]


def test_limit_counts_text_after_parsing() -> None:
    # 5000 raw characters, 4000 after parsing: accepted
    html = "&amp;" * 250 + "a" * 3750
    assert len(html) == 5000
    assert len(check_message_text(html).text) == 4000
    assert len(check_message_text("x" * 4096).text) == 4096


def test_limit_over_4096_after_parsing() -> None:
    with pytest.raises(HtmlParseError) as info:
        check_message_text("<b>" + "x" * 4097 + "</b>")
    assert info.value.description == "Bad Request: message is too long"


def test_limit_counts_utf16_units_not_bytes_nor_code_points() -> None:
    assert len(check_message_text("ü" * 4096).text) == 4096  # 8192 bytes
    with pytest.raises(HtmlParseError):
        check_message_text("ü" * 4097)
    assert len(check_message_text("😀" * 2048).text) == 2048  # 4096 UTF-16 units
    with pytest.raises(HtmlParseError) as info:
        check_message_text("😀" * 2049)  # 2049 code points, 4098 units
    assert info.value.description == "Bad Request: message is too long"


def test_raw_input_over_32k_is_refused_before_parsing() -> None:
    html = "<b></b>" * 5000 + "x"  # 35001 bytes, one character after parsing
    with pytest.raises(HtmlParseError) as info:
        check_message_text(html)
    assert info.value.description == "Bad Request: message is too long"


def test_escaped_label_values_round_trip() -> None:
    parsed = check_message_text('<code>job="a&lt;b&amp;c"</code>')
    assert parsed.text == 'job="a<b&c"'
