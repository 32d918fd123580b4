"""Telegram's HTML parse_mode, re-implemented after TDLib's ``parse_html``: the fallback
judge where TDLib itself (sandbox/tdlib.py) cannot be imported. Kept equal to TDLib in
what it accepts, refuses (with the same error) and leaves as text by
tests/sandbox/test_html_differential.py; limits and clean-up are in sandbox/judge.py.

Works on UTF-8 bytes like TDLib does, so error offsets are byte offsets and
entity offsets/lengths are UTF-16 code units, as the Bot API reports them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PREFIX = "Bad Request: can't parse entities: "

# tag name -> simple entity type (tags whose entity needs no argument)
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
}
_ALL_TAGS = {*_SIMPLE_TAGS, "span", "a", "tg-emoji", "tg-time", "code", "pre", "blockquote"}
_NAMED_ENTITIES = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACES = b" \t\n\r\v"  # TDLib's is_space: no form feed
_BAD_UNICODE = (
    "Text contains invalid Unicode characters after decoding HTML entities, "
    "check for unmatched surrogate code units"
)
_INT64 = 2**63
_EMOJI_ID = re.compile(r"-?[1-9][0-9]*")


class HtmlParseError(ValueError):
    """A text Telegram would refuse; ``description`` is the Bot API error text."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass
class ParsedText:
    text: str
    entities: list[dict] = field(default_factory=list)


def utf16_len(s: str) -> int:
    """Length in UTF-16 code units (what Telegram offsets count)."""
    return len(s.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    arg: str
    utf16_offset: int
    result_pos: int  # byte position in the output, to recover an <a>'s text
    expandable: bool = False
    attrs: dict[str, str] = field(default_factory=dict)  # tg-emoji and tg-time


def _decode_entity(data: bytes, pos: int) -> tuple[str, int] | None:
    """Decode ``&...`` at ``pos``; None when it is not an entity TDLib knows."""
    n = len(data)
    end = pos + 1
    if end < n and data[end] == ord("#"):
        end += 1
        value = 0
        hexa = end < n and data[end] in b"xX"
        if hexa:
            end += 1
        digits = b"0123456789abcdefABCDEF" if hexa else b"0123456789"
        start_digits = end
        while end < n and data[end] in digits:
            value = value * (16 if hexa else 10) + int(chr(data[end]), 16)
            end += 1
            if value >= 0x10FFFF:
                return None
        if end == start_digits or value == 0:
            return None
        char = chr(value)
    else:
        while end < n and chr(data[end]).isascii() and chr(data[end]).isalpha():
            end += 1
        char_or_none = _NAMED_ENTITIES.get(data[pos + 1 : end])
        if char_or_none is None:
            return None  # e.g. &nbsp; stays literal text
        char = char_or_none
    if end < n and data[end] == ord(";"):
        end += 1
    return char, end


def _utf16_units(chunk: bytes) -> int:
    # count UTF-8 lead bytes; 4-byte sequences are surrogate pairs in UTF-16
    return sum(1 + (b >= 0xF0) for b in chunk if b & 0xC0 != 0x80)


def parse_html(text: str) -> ParsedText:
    data = text.encode("utf-8")
    n = len(data)
    out = bytearray()
    utf16 = 0
    stack: list[_Open] = []
    entities: list[dict] = []
    has_nul = b"\0" in data
    i = 0
    while i < n:
        c = data[i]
        if c == ord("&"):
            decoded = _decode_entity(data, i)
            if decoded is not None:
                char, i = decoded
                # a surrogate gives invalid UTF-8, refused once parsing is done, as TDLib does
                out += char.encode("utf-8", "surrogatepass")
                utf16 += 1 + (ord(char) > 0xFFFF)
                continue
        if c != ord("<"):
            out.append(c)
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            i += 1
            continue

        begin = i
        i += 1
        # inside a tag TDLib reads a NUL as the end of the text (a C string)
        nul = data.find(b"\0", i) if has_nul else -1
        tag_data = data if nul < 0 else data[:nul]
        if i < n and data[i] == ord("/"):
            i = _close_tag(tag_data, begin, i, stack, entities, out, utf16)
            continue
        i, opened = _open_tag(tag_data, begin, i)
        opened.utf16_offset = utf16
        opened.result_pos = len(out)
        stack.append(opened)

    if stack:
        raise HtmlParseError(
            f'{_PREFIX}Can\'t find end tag corresponding to start tag "{stack[-1].tag}"'
        )
    try:
        plain = out.decode("utf-8")
    except UnicodeDecodeError:
        raise HtmlParseError(f"{_PREFIX}{_BAD_UNICODE}") from None
    return ParsedText(plain, _normalize(entities))


def _open_tag(data: bytes, begin: int, i: int) -> tuple[int, _Open]:
    n = len(data)
    while i < n and data[i] not in _SPACES and data[i] != ord(">"):
        i += 1
    if i >= n:
        raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
    tag = data[begin + 1 : i].lower().decode("utf-8", "replace")  # ASCII-only lowering
    if tag not in _ALL_TAGS:
        raise HtmlParseError(f'{_PREFIX}Unsupported start tag "{tag}" at byte offset {begin}')
    opened = _Open(tag, "", 0, 0)
    unclosed = HtmlParseError(f'{_PREFIX}Unclosed start tag "{tag}" at byte offset {begin}')
    while data[i] != ord(">"):
        while i < n and data[i] in _SPACES:
            i += 1
        if i < n and data[i] == ord(">"):
            break
        name_start = i
        while i < n and data[i] not in _SPACES and data[i] not in b"=>/\"'":
            i += 1
        name = data[name_start:i].decode("utf-8", "replace")  # case-sensitive in TDLib
        if not name:
            raise HtmlParseError(
                f'{_PREFIX}Empty attribute name in the tag "{tag}" at byte offset {begin}'
            )
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise unclosed
        if tag == "blockquote" and name == "expandable":
            opened.expandable = True  # with or without a value
        if data[i] != ord("="):
            _apply_attribute(opened, name, "")  # an attribute without a value
            continue
        i += 1
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise unclosed
        value, i = _attribute_value(data, i)
        if i >= n:
            raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
        _apply_attribute(opened, name, value)
    if opened.tag == "span" and opened.arg != "spoiler":
        raise HtmlParseError(
            f'{_PREFIX}Tag "span" must have class "tg-spoiler" at byte offset {begin}'
        )
    return i + 1, opened


def _attribute_value(data: bytes, i: int) -> tuple[str, int]:
    n = len(data)
    if data[i] not in b"'\"":
        # unquoted name token: letters, digits, '.', '-'; case-insensitive
        start = i
        while i < n and ((chr(data[i]).isalnum() and data[i] < 0x80) or data[i] in b".-"):
            i += 1
        if i < n and data[i] not in _SPACES and data[i] != ord(">"):
            raise HtmlParseError(f"{_PREFIX}Unexpected end of name token at byte offset {start}")
        return data[start:i].decode().lower(), i
    quote = data[i]
    i += 1
    value = bytearray()
    while i < n and data[i] != quote:
        if data[i] == ord("&"):
            decoded = _decode_entity(data, i)
            if decoded is not None:
                value += decoded[0].encode("utf-8", "surrogatepass")
                i = decoded[1]
                continue
        value.append(data[i])
        i += 1
    if i < n:
        i += 1
    return value.decode("utf-8", "replace"), i


def _apply_attribute(opened: _Open, name: str, value: str) -> None:
    # unknown attributes are ignored, as TDLib does
    tag = opened.tag
    if tag == "a" and name == "href":
        opened.arg = value
    elif tag == "code" and name == "class" and value.startswith("language-"):
        opened.arg = value[len("language-") :]
    elif tag == "span" and name == "class" and value.startswith("tg-"):
        opened.arg = value[len("tg-") :]
    elif (tag, name) in (("tg-emoji", "emoji-id"), ("tg-time", "unix"), ("tg-time", "format")):
        opened.attrs[name] = value


def _close_tag(
    data: bytes,
    begin: int,
    i: int,
    stack: list[_Open],
    entities: list[dict],
    out: bytearray,
    utf16: int,
) -> int:
    n = len(data)
    if not stack:
        raise HtmlParseError(f"{_PREFIX}Unexpected end tag at byte offset {begin}")
    i += 1  # skip '/'
    while i < n and data[i] not in _SPACES and data[i] != ord(">"):
        i += 1
    end_name = data[begin + 2 : i].lower().decode("utf-8", "replace")
    while i < n and data[i] in _SPACES:
        i += 1
    if i >= n or data[i] != ord(">"):
        raise HtmlParseError(f"{_PREFIX}Unclosed end tag at byte offset {begin}")
    opened = stack.pop()
    if end_name and end_name != opened.tag:
        raise HtmlParseError(
            f"{_PREFIX}Unmatched end tag at byte offset {begin}, "
            f'expected "</{opened.tag}>", found "</{end_name}>"'
        )
    if utf16 > opened.utf16_offset:
        entity = _make_entity(opened, utf16, entities, out)
        if entity is not None:
            entities.append(entity)
    return i + 1


def _make_entity(opened: _Open, utf16: int, entities: list[dict], out: bytearray) -> dict | None:
    offset, length = opened.utf16_offset, utf16 - opened.utf16_offset
    base = {"offset": offset, "length": length}
    tag = opened.tag
    if tag in _SIMPLE_TAGS or tag == "span":
        return {"type": _SIMPLE_TAGS.get(tag, "spoiler"), **base}
    if tag == "a":
        url = opened.arg or out[opened.result_pos :].decode("utf-8", "replace")
        if url.startswith("tg://user?id=") and url[len("tg://user?id=") :].isdigit():
            user = {"id": int(url[len("tg://user?id=") :]), "is_bot": False, "first_name": ""}
            return {"type": "text_mention", **base, "user": user}
        return {"type": "text_link", **base, "url": url} if url.strip() else None
    if tag == "tg-emoji":
        emoji_id = opened.attrs.get("emoji-id", "")
        if not _EMOJI_ID.fullmatch(emoji_id) or not -_INT64 <= int(emoji_id) < _INT64:
            raise HtmlParseError(f"{_PREFIX}Invalid custom emoji identifier specified")
        return {"type": "custom_emoji", **base, "custom_emoji_id": emoji_id}
    if tag == "tg-time":
        unix, fmt = opened.attrs.get("unix", ""), opened.attrs.get("format", "")
        if fmt and fmt.lower() != "r" and fmt.strip("wWdDtT"):
            raise HtmlParseError(f"{_PREFIX}Invalid date format used")
        if not unix.isdigit() or not 0 < int(unix) < 2**31:
            return None
        entity = {"type": "date_time", **base, "unix_time": int(unix)}
        if fmt:
            entity["date_time_format"] = fmt
        return entity
    last = entities[-1] if entities else None
    same_range = last is not None and last["offset"] == offset and last["length"] == length
    if tag == "pre":
        # <pre><code class="language-x"> is one pre entity with a language
        if same_range and last and last["type"] == "code":
            language = last.pop("_language", "")
            last["type"] = "pre"
            if language:
                last["language"] = language
            return None
        return {"type": "pre", **base}
    if tag == "code":
        if same_range and last and last["type"] == "pre" and opened.arg:
            last["language"] = opened.arg
            return None
        entity = {"type": "code", **base}
        if opened.arg:
            entity["_language"] = opened.arg  # used only if a <pre> wraps it
        return entity
    # blockquote
    return {"type": "expandable_blockquote" if opened.expandable else "blockquote", **base}


def _normalize(entities: list[dict]) -> list[dict]:
    for entity in entities:
        entity.pop("_language", None)
    # formatting inside code/pre is dropped, as Telegram does
    code_ranges = [
        (e["offset"], e["offset"] + e["length"]) for e in entities if e["type"] in ("code", "pre")
    ]
    kept = [
        e
        for e in entities
        if e["type"] in ("code", "pre")
        or not any(s <= e["offset"] and e["offset"] + e["length"] <= t for s, t in code_ranges)
    ]
    return sorted(kept, key=lambda e: (e["offset"], -e["length"]))
