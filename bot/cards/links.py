"""Links the bot shows: what Grafana sends besides the source (dashboard, panel, silence),
and t.me links to a message of ours. Which links may become URL buttons is
keyboards/urls.py's rule."""

from __future__ import annotations

from collections.abc import Iterable

from bot.models import GRAFANA_LINK_ANNOTATIONS, Alert


def extra_links(alerts: Iterable[Alert]) -> list[tuple[str, str]]:
    """(button key, url) of the links Grafana sends besides the source (dashboard, panel,
    silence), each from the first alert that has it, in that order."""
    alerts = list(alerts)
    found = []
    for key, annotation in GRAFANA_LINK_ANNOTATIONS.items():
        url = next((u for a in alerts if (u := a.annotations.get(annotation, "").strip())), "")
        if url:
            found.append((key, url))
    return found


# Supergroups and channels have chat ids -100XXXXXXXXXX, i.e. -(10**12 + channel id) with
# 0 < channel id < 10**12 (TDLib's ZERO_CHANNEL_ID); basic groups are -1 .. -999999999999.
_CHANNEL_BASE = 1_000_000_000_000


def message_link(chat_id: int, message_id: int, thread_id: int | None = None) -> str | None:
    """t.me link to a message of a supergroup/channel (`?thread=` inside a topic);
    None for basic groups and private chats, which have no message links."""
    channel = -chat_id - _CHANNEL_BASE
    if not 0 < channel < _CHANNEL_BASE or message_id <= 0:
        return None
    url = f"https://t.me/c/{channel}/{message_id}"
    if thread_id is not None and thread_id > 0:
        url += f"?thread={thread_id}"
    return url
