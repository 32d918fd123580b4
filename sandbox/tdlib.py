"""TDLib's own HTML parser (PyPI ``tdjson``), the one the Bot API server runs.

``parseTextEntities`` is a synchronous, offline TDLib request: no account, no network.
The Bot API server calls it for every ``parse_mode=HTML`` text and answers its error
with the first letter lowered, after ``Bad Request: ``. Entities are returned in the Bot
API's JSON shape. Where ``tdjson`` cannot be imported, ``AVAILABLE`` is False and the
hand-written ``sandbox.telegram_html`` parser stands in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

td_execute: Callable[[bytes], bytes | None] | None
try:
    from tdjson import td_execute
except ImportError:  # no wheel for this platform; the fallback parser is used
    td_execute = None

AVAILABLE = td_execute is not None


class TdlibError(ValueError):
    """TDLib refused the text; ``message`` is TDLib's own error text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _execute(request: dict[str, Any]) -> dict[str, Any]:
    if td_execute is None:
        raise RuntimeError("tdjson is not installed")
    answer = td_execute(json.dumps(request, ensure_ascii=False).encode("utf-8"))
    result: dict[str, Any] = json.loads(answer or b"{}")
    return result


if AVAILABLE:
    # TDLib logs every synchronous request to stderr at its default verbosity.
    _execute({"@type": "setLogVerbosityLevel", "new_verbosity_level": 0})

_SIMPLE = {
    "textEntityTypeBold": "bold",
    "textEntityTypeItalic": "italic",
    "textEntityTypeUnderline": "underline",
    "textEntityTypeStrikethrough": "strikethrough",
    "textEntityTypeSpoiler": "spoiler",
    "textEntityTypeCode": "code",
    "textEntityTypePre": "pre",
    "textEntityTypeBlockQuote": "blockquote",
    "textEntityTypeExpandableBlockQuote": "expandable_blockquote",
}
_PRECISION = {"dateTimePartPrecisionShort": 1, "dateTimePartPrecisionLong": 2}


def _date_time_format(formatting: dict[str, Any] | None) -> str:
    """TDLib's dateTimeFormattingType back to the Bot API's ``format`` letters."""
    if not formatting:
        return ""
    if formatting["@type"] == "dateTimeFormattingTypeRelative":
        return "r"
    time_p = _PRECISION.get(formatting.get("time_precision", {}).get("@type", ""), 0)
    date_p = _PRECISION.get(formatting.get("date_precision", {}).get("@type", ""), 0)
    week = "w" if formatting.get("show_day_of_week") else ""
    return week + ("", "d", "D")[date_p] + ("", "t", "T")[time_p]


def _bot_api_entity(entity: dict[str, Any]) -> dict[str, Any]:
    kind: dict[str, Any] = entity["type"]
    name = kind["@type"]
    base: dict[str, Any] = {"offset": entity["offset"], "length": entity["length"]}
    if name in _SIMPLE:
        return {"type": _SIMPLE[name], **base}
    if name == "textEntityTypePreCode":
        return {"type": "pre", **base, "language": kind["language"]}
    if name == "textEntityTypeTextUrl":
        return {"type": "text_link", **base, "url": kind["url"]}
    if name == "textEntityTypeMentionName":
        user = {"id": kind["user_id"], "is_bot": False, "first_name": ""}
        return {"type": "text_mention", **base, "user": user}
    if name == "textEntityTypeCustomEmoji":
        return {"type": "custom_emoji", **base, "custom_emoji_id": str(kind["custom_emoji_id"])}
    if name == "textEntityTypeDateTime":
        found = {"type": "date_time", **base, "unix_time": kind["unix_time"]}
        fmt = _date_time_format(kind.get("formatting_type"))
        if fmt:
            found["date_time_format"] = fmt
        return found
    return {"type": name.removeprefix("textEntityType").lower(), **base}


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(plain text, Bot API entities) as TDLib parses ``text``; TdlibError if it refuses."""
    answer = _execute(
        {
            "@type": "parseTextEntities",
            "text": text,
            "parse_mode": {"@type": "textParseModeHTML"},
        }
    )
    if answer.get("@type") == "error":
        raise TdlibError(str(answer.get("message", "")))
    return answer["text"], [_bot_api_entity(e) for e in answer.get("entities", [])]
