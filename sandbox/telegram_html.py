"""Telegram's HTML parse_mode, re-implemented after TDLib's ``parse_html``.

Works on UTF-8 bytes like TDLib does, so error offsets are byte offsets and
entity offsets/lengths are UTF-16 code units, as the Bot API reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TEXT_CHARS = 4096
MAX_RAW_BYTES = 32 * 1024

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
_SPACES = b" \t\n\r\f\v"


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
        if end == start_digits or value == 0 or 0xD800 <= value <= 0xDFFF:
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
    i = 0
    while i < n:
        c = data[i]
        if c == ord("&"):
            decoded = _decode_entity(data, i)
            if decoded is not None:
                char, i = decoded
                out += char.encode("utf-8")
                utf16 += utf16_len(char)
                continue
        if c != ord("<"):
            out.append(c)
            if c & 0xC0 != 0x80:
                utf16 += 1 + (c >= 0xF0)
            i += 1
            continue

        begin = i
        i += 1
        if i < n and data[i] == ord("/"):
            i = _close_tag(data, begin, i, stack, entities, out, utf16)
            continue
        i, opened = _open_tag(data, begin, i)
        opened.utf16_offset = utf16
        opened.result_pos = len(out)
        if opened.tag == "blockquote" and any(o.tag == "blockquote" for o in stack):
            raise HtmlParseError(f"{_PREFIX}Blockquotes can't be nested at byte offset {begin}")
        stack.append(opened)

    if stack:
        raise HtmlParseError(
            f'{_PREFIX}Can\'t find end tag corresponding to start tag "{stack[-1].tag}"'
        )
    plain = out.decode("utf-8")
    return ParsedText(plain, _normalize(entities))


def _open_tag(data: bytes, begin: int, i: int) -> tuple[int, _Open]:
    n = len(data)
    while i < n and data[i] not in _SPACES and data[i] != ord(">"):
        i += 1
    if i >= n:
        raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
    tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
    if tag not in _ALL_TAGS:
        raise HtmlParseError(f'{_PREFIX}Unsupported start tag "{tag}" at byte offset {begin}')
    opened = _Open(tag, "", 0, 0)
    while data[i] != ord(">"):
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
        if data[i] == ord(">"):
            break
        name_start = i
        while i < n and data[i] not in _SPACES and data[i] not in b"=>":
            i += 1
        name = data[name_start:i].decode("utf-8", "replace").lower()
        if not name:
            raise HtmlParseError(
                f'{_PREFIX}Empty attribute name in the tag "{tag}" at byte offset {begin}'
            )
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
        if data[i] != ord("="):
            if tag == "blockquote" and name == "expandable":
                opened.expandable = True
                continue
            raise HtmlParseError(
                f"{_PREFIX}Expected equal sign in declaration of an attribute of the tag "
                f'"{tag}" at byte offset {begin}'
            )
        i += 1
        while i < n and data[i] in _SPACES:
            i += 1
        if i >= n:
            raise HtmlParseError(f"{_PREFIX}Unclosed start tag at byte offset {begin}")
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
                value += decoded[0].encode("utf-8")
                i = decoded[1]
                continue
        value.append(data[i])
        i += 1
    if i < n:
        i += 1
    return value.decode("utf-8"), i


def _apply_attribute(opened: _Open, name: str, value: str) -> None:
    # unknown attributes are ignored, as TDLib does
    tag = opened.tag
    if tag == "a" and name == "href":
        opened.arg = value
    elif tag == "code" and name == "class" and value.startswith("language-"):
        opened.arg = value[len("language-") :]
    elif tag == "span" and name == "class" and value.startswith("tg-"):
        opened.arg = value[len("tg-") :]
    elif tag == "tg-emoji" and name == "emoji-id":
        opened.arg = value
    elif tag == "tg-time" and name in ("unix", "format"):
        # keep both attributes: "unix=..;format=.."
        parts = dict(p.split("=", 1) for p in opened.arg.split(";") if "=" in p)
        parts[name] = value
        opened.arg = ";".join(f"{k}={v}" for k, v in parts.items())


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
    end_name = data[begin + 2 : i].decode("utf-8", "replace").lower()
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
        url = opened.arg or out[opened.result_pos :].decode("utf-8")
        if url.startswith("tg://user?id=") and url[len("tg://user?id=") :].isdigit():
            user = {"id": int(url[len("tg://user?id=") :]), "is_bot": False, "first_name": ""}
            return {"type": "text_mention", **base, "user": user}
        return {"type": "text_link", **base, "url": url} if url.strip() else None
    if tag == "tg-emoji":
        return {"type": "custom_emoji", **base, "custom_emoji_id": opened.arg}
    if tag == "tg-time":
        parts = dict(p.split("=", 1) for p in opened.arg.split(";") if "=" in p)
        if not parts.get("unix", "").isdigit():
            return None
        entity = {"type": "date_time", **base, "unix_time": int(parts["unix"])}
        if parts.get("format"):
            entity["date_time_format"] = parts["format"]
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


def _strip(parsed: ParsedText) -> ParsedText:
    """Trim surrounding whitespace like Telegram and shift/clip entities."""
    text = parsed.text
    stripped = text.strip()
    if stripped == text:
        return parsed
    head = utf16_len(text[: len(text) - len(text.lstrip())])
    new_len = utf16_len(stripped)
    entities = []
    for entity in parsed.entities:
        start = max(entity["offset"] - head, 0)
        end = min(entity["offset"] + entity["length"] - head, new_len)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return ParsedText(stripped, entities)


def check_message_text(html: str) -> ParsedText:
    """Validate a sendMessage/editMessageText text in HTML parse mode."""
    if len(html.encode("utf-8")) > MAX_RAW_BYTES:
        raise HtmlParseError("Bad Request: message is too long")
    parsed = _strip(parse_html(html))
    if not parsed.text:
        raise HtmlParseError("Bad Request: message text is empty")
    if len(parsed.text) > MAX_TEXT_CHARS:
        raise HtmlParseError("Bad Request: message is too long")
    return parsed


def check_plain_text(text: str) -> ParsedText:
    """Same limits for a text sent without parse_mode."""
    if len(text.encode("utf-8")) > MAX_RAW_BYTES:
        raise HtmlParseError("Bad Request: message is too long")
    parsed = _strip(ParsedText(text, []))
    if not parsed.text:
        raise HtmlParseError("Bad Request: message text is empty")
    if len(parsed.text) > MAX_TEXT_CHARS:
        raise HtmlParseError("Bad Request: message is too long")
    return parsed
