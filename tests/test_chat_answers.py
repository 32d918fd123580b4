"""bot.chat (commands, history, open_incidents), bot.silences.replies and the migration
note: chat answers in both locales, under hostile and huge input."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from factories import T0, UTC_TZ, make_incident

from bot.cards.links import message_link
from bot.chat.commands import (
    COMMANDS,
    command_menu,
    render_help,
    render_not_allowed,
    render_usage,
)
from bot.chat.history import (
    HISTORY_QUERY_MAX,
    HISTORY_USAGE,
    HistoryRow,
    history_keyboard,
    history_query,
    render_history_page,
    render_target_history,
)
from bot.chat.open_incidents import OpenIncidentRow, render_incidents
from bot.models import Matcher, Silence
from bot.silences.alertmanager import RemoteSilence
from bot.silences.arguments import SILENCE_USAGE, UNSILENCE_USAGE
from bot.silences.replies import (
    MAX_EXPIRE_BUTTONS,
    matcher_text,
    render_silence_created,
    render_silence_expired,
    render_silence_list,
    render_unknown_silence,
)
from bot.telegram.chat_migration import render_migrated
from keyboards.callbacks import HistoryPageCB, SilenceAct, SilenceCB
from sandbox.judge import check_message_text

TAIPEI = ZoneInfo("Asia/Taipei")
LOCALES = ("en", "zh-TW")
CJK = re.compile(r"[\u4e00-\u9fff]")
LONG = "x" * 5000

HOSTILE = [
    "<script>alert(1)</script>",
    "a & b && c &amp; &lt;",
    "say \"hi\" 'there'",
    "</code></pre></blockquote><a href='x'>",
    "🔥💥🚨 emoji 👩‍👩‍👧‍👦" * 300,
    "\x00\x1b[31mred\r\n\ud800",
    LONG,
    "<" * 5000,
    "&" * 5000,
]


def check(html: str) -> str:
    """Telegram's parser must accept it within the limits; returns what users see."""
    parsed = check_message_text(html)
    assert len(parsed.text.encode("utf-16-le")) // 2 <= 4096
    assert len(html.encode()) <= 30 * 1024
    return parsed.text


def check_keyboard(keyboard: list[list[dict]]) -> None:
    for row in keyboard:
        for btn in row:
            assert btn["text"].strip()
            assert len(btn["callback_data"].encode()) <= 64


def make_silence(i: int = 0, **kw) -> Silence:
    base = dict(
        id=f"S-{i:06X}",
        matchers=[
            Matcher(name="service", value="api"),
            Matcher(name="alertname", value="Disk.*", is_regex=True),
        ],
        reason="deploy in progress",
        created_by="@alice",
        created_by_id=1,
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2, minutes=i),
    )
    base.update(kw)
    return Silence(**base)


def make_remote(i: int = 0, **kw) -> RemoteSilence:
    base = dict(
        id=f"0f8c6e2a-0000-4000-8000-{i:012d}",
        matchers=[Matcher(name="job", value="node")],
        created_by="amtool",
        comment="kernel upgrade",
        starts_at=T0,
        ends_at=T0 + timedelta(days=1),
    )
    base.update(kw)
    return RemoteSilence(**base)


# ------------------------------------------------------------------ help, menu


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("approver", [True, False])
def test_help_lists_every_command(locale: str, approver: bool) -> None:
    text = check(render_help(is_approver=approver, tz=UTC_TZ, locale=locale))
    for command in COMMANDS:
        assert re.search(rf"^/{command} ", text, re.M), command
    assert "APPROVER_IDS" in text or approver
    if locale == "zh-TW":
        assert CJK.search(text) and "this list" not in text and "核准" in text
    else:
        assert "this list" in text and not CJK.search(text)


@pytest.mark.parametrize("locale", LOCALES)
def test_command_menu(locale: str) -> None:
    menu = command_menu(locale)
    assert [m["command"] for m in menu] == list(COMMANDS)
    assert {"silence", "silences", "unsilence", "history", "incidents", "whoami", "help"} == {
        m["command"] for m in menu
    }
    for item in menu:
        assert set(item) == {"command", "description"}
        assert re.fullmatch(r"[a-z0-9_]{1,32}", item["command"])
        assert 1 <= len(item["description"]) <= 256
        assert "<" not in item["description"] and "&amp;" not in item["description"]
    if locale == "zh-TW":
        assert all(CJK.search(m["description"]) for m in menu)
        assert menu != command_menu("en")


@pytest.mark.parametrize("locale", LOCALES)
def test_usage(locale: str) -> None:
    for usage in (SILENCE_USAGE, UNSILENCE_USAGE, HISTORY_USAGE):
        text = check(render_usage(usage, error="Too long: 30 days max.", tz=UTC_TZ, locale=locale))
        assert text.startswith("⚠️ Too long: 30 days max.")
        assert usage in text
        no_error = check(render_usage(usage, error=None, tz=UTC_TZ, locale=locale))
        assert "⚠️" not in no_error and usage in no_error
    prefix = "用法：" if locale == "zh-TW" else "Usage: "
    assert prefix in no_error
    if locale == "zh-TW":
        assert "Usage" not in no_error


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_usage_hostile(locale: str, value: str) -> None:
    text = check(render_usage(value, error=value, tz=UTC_TZ, locale=locale))
    if value.startswith("<script>"):
        assert "<script>alert(1)</script>" in text


# --------------------------------------------------------------------- silences


def test_matcher_text() -> None:
    assert matcher_text(Matcher(name="service", value="api")) == 'service="api"'
    assert matcher_text(Matcher(name="a", value='Disk"\\d', is_regex=True)) == r'a=~"Disk\"\\d"'


@pytest.mark.parametrize("locale", LOCALES)
def test_silence_created(locale: str) -> None:
    silence = make_silence()
    now = T0 + timedelta(minutes=5)
    texts = {
        status: check(
            render_silence_created(
                silence, open_matches=3, am_status=status, tz=TAIPEI, locale=locale, now=now
            )
        )
        for status in ("synced", "local", "off")
    }
    for text in texts.values():
        assert "S-000000" in text
        assert 'service="api"' in text and 'alertname=~"Disk.*"' in text
        assert "2026-11-27 23:07 CST" in text  # ends_at in the given zone
        assert "1h 55m" in text  # from `now`, not from starts_at
        assert "deploy in progress" in text and "@alice" in text
        assert "3" in text
    assert "Alertmanager" in texts["synced"] and "Alertmanager" in texts["local"]
    assert "Alertmanager" not in texts["off"]
    if locale == "zh-TW":
        assert "無法連線到 Alertmanager" in texts["local"]
        assert all(CJK.search(t) and "Matches" not in t for t in texts.values())
    else:
        assert "unreachable" in texts["local"] and "opsgate only" in texts["local"]
        assert "Matches 3 open incidents right now." in texts["off"]
    one = check(
        render_silence_created(
            silence, open_matches=1, am_status="off", tz=UTC_TZ, locale=locale, now=now
        )
    )
    assert "1" in one
    with pytest.raises(ValueError):
        render_silence_created(silence, open_matches=0, am_status="maybe", tz=UTC_TZ, now=now)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_silence_created_hostile(locale: str, value: str) -> None:
    silence = make_silence(
        id=value[:100],
        matchers=[Matcher(name=f"l{i}", value=value, is_regex=i % 2 == 1) for i in range(50)],
        reason=value,
        created_by=value,
    )
    text = check(
        render_silence_created(
            silence, open_matches=10**6, am_status="local", tz=UTC_TZ, locale=locale, now=T0
        )
    )
    if value.startswith("<script>"):
        assert "<script>alert(1)</script>" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_silence_list(locale: str) -> None:
    local = [make_silence(2), make_silence(1)]
    remote = [make_remote(1), make_remote(0, id="S-000001")]  # the second mirrors a local one
    text, keyboard = render_silence_list(
        local, remote, can_expire=True, tz=UTC_TZ, locale=locale, now=T0
    )
    shown = check(text)
    assert shown.index("S-000001") < shown.index("S-000002")  # soonest end first
    assert shown.count("S-000001") == 1
    assert "0f8c6e2a-0000-4000-8000-000000000001" in shown
    assert "kernel upgrade" in shown and "amtool" in shown
    assert "2h 1m" in shown  # time left from now
    marker = "（僅存在於 Alertmanager）" if locale == "zh-TW" else "(Alertmanager only)"
    assert shown.count(marker) == 1
    assert shown.index(marker) > shown.index("S-000002")
    check_keyboard(keyboard)
    assert [len(row) for row in keyboard] == [1, 1]
    assert [SilenceCB.unpack(row[0]["callback_data"]).sid for row in keyboard] == [
        "S-000001",
        "S-000002",
    ]
    assert (
        keyboard[0][0]["callback_data"] == SilenceCB(act=SilenceAct.EXPIRE, sid="S-000001").pack()
    )
    assert keyboard[0][0]["text"].startswith("🔔") and "S-000001" in keyboard[0][0]["text"]
    if locale == "zh-TW":
        assert CJK.search(keyboard[0][0]["text"]) and "Expire" not in keyboard[0][0]["text"]

    _, no_buttons = render_silence_list(
        local, remote, can_expire=False, tz=UTC_TZ, locale=locale, now=T0
    )
    assert no_buttons == []


@pytest.mark.parametrize("locale", LOCALES)
def test_silence_list_empty(locale: str) -> None:
    text, keyboard = render_silence_list([], [], can_expire=True, tz=UTC_TZ, locale=locale, now=T0)
    shown = check(text)
    assert keyboard == []
    if locale == "zh-TW":
        assert "目前沒有生效中的靜音。" in shown and "No active" not in shown
    else:
        assert "No active silences." in shown


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_silence_list_huge_and_hostile(locale: str, value: str) -> None:
    matchers = [Matcher(name=f"l{i}", value=value, is_regex=True) for i in range(20)]
    local = [make_silence(i, reason=value, created_by=value, matchers=matchers) for i in range(500)]
    remote = [
        make_remote(i, comment=value, created_by=value, matchers=matchers) for i in range(500)
    ]
    text, keyboard = render_silence_list(
        local, remote, can_expire=True, tz=UTC_TZ, locale=locale, now=T0
    )
    shown = check(text)
    more = re.search(r"… (?:另有 )?(\d+)", shown)
    assert more and 900 <= int(more.group(1)) < 1000
    assert len(keyboard) == MAX_EXPIRE_BUTTONS
    check_keyboard(keyboard)


def test_silence_list_many_small_shows_several() -> None:
    local = [make_silence(i) for i in range(500)]
    text, keyboard = render_silence_list(local, [], can_expire=True, tz=UTC_TZ, now=T0)
    shown = check(text)
    assert shown.count("S-0") >= 8  # a useful number of entries, not just the header
    assert "… " in shown and "more" in shown
    assert len(keyboard) == MAX_EXPIRE_BUTTONS


@pytest.mark.parametrize("locale", LOCALES)
def test_silence_expired(locale: str) -> None:
    silence = make_silence()
    by = check(render_silence_expired(silence, by="@bob", tz=UTC_TZ, locale=locale))
    auto = check(render_silence_expired(silence, by=None, tz=TAIPEI, locale=locale))
    assert "S-000000" in by and "@bob" in by
    assert "S-000000" in auto and "23:07 CST" in auto and "@bob" not in auto
    early = make_silence(expired_at=T0 + timedelta(minutes=30))
    assert "13:37" in check(render_silence_expired(early, by=None, tz=UTC_TZ, locale=locale))
    if locale == "zh-TW":
        assert "已由 @bob 解除" in by and "結束" in auto
        assert "expired by" not in by and "ended at" not in auto
    else:
        assert "Silence S-000000 expired by @bob." in by
        assert "Silence S-000000 ended at 23:07 CST." in auto


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_silence_expired_and_unknown_hostile(locale: str, value: str) -> None:
    silence = make_silence(
        id=value, matchers=[Matcher(name="a", value=value)] * 30, created_by=value
    )
    for by in (value, None):
        check(render_silence_expired(silence, by=by, tz=UTC_TZ, locale=locale))
    text = check(render_unknown_silence(value, tz=UTC_TZ, locale=locale))
    if value.startswith("<script>"):
        assert "<script>alert(1)</script>" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_unknown_silence(locale: str) -> None:
    text = check(render_unknown_silence("S-ABC123", tz=UTC_TZ, locale=locale))
    assert "S-ABC123" in text and "/silences" in text
    if locale == "zh-TW":
        assert CJK.search(text) and "No active" not in text


# --------------------------------------------------------------------- history


def history_rows(n: int, value: str | None = None) -> list[HistoryRow]:
    rows = []
    states = [None, "succeeded", "failed", "rejected", "cancelled", "pending"]
    for i in range(n):
        resolved = T0 - timedelta(minutes=i) + timedelta(minutes=5) if i % 2 == 0 else None
        inc = make_incident(
            i,
            resolved_at=resolved,
            alertname=value or "KubePodCrashLooping",
            target=value or "cart",
            id=f"INC-{i:06d}" if value is None else value,
        )
        rows.append(HistoryRow(inc, states[i % len(states)], value or "alice", i % 4 == 1))
    return rows


def target_rows(n: int, value: str = "cart") -> list[HistoryRow]:
    """The History button's rows: every outcome, some dry-run, some without a decision."""
    out = []
    states = [None, "succeeded", "failed", "rejected", "cancelled", "pending", "invalid"]
    for i in range(n):
        inc = make_incident(
            id=f"INC-{i:06d}",
            alertname=value,
            opened_at=T0 - timedelta(days=i),
            status="resolved",
            resolved_at=T0 - timedelta(days=i) + timedelta(minutes=5 + i),
        )
        out.append(HistoryRow(inc, states[i % len(states)], None, dry_run=i % 4 == 1))
    return out


@pytest.mark.parametrize("locale", LOCALES)
def test_target_history(locale: str) -> None:
    text = check(render_target_history("cart", target_rows(3), tz=UTC_TZ, locale=locale))
    assert "INC-000000" in text and "INC-000002" in text
    if locale == "en":
        assert "2026-11-27 13:07 UTC · 5m" in text
        assert "fixed (dry-run)" in text and "no decision" in text
    empty = check(render_target_history("cart", [], tz=UTC_TZ, locale=locale))
    assert empty


def test_target_history_bounded_and_hostile() -> None:
    for value in [*HOSTILE, LONG]:
        text = check(render_target_history(value, target_rows(50, value), tz=UTC_TZ))
        assert "… 35 older" in text
        assert text.index("INC-000000") < text.index("INC-000001")  # newest first


@pytest.mark.parametrize("locale", LOCALES)
def test_history_page(locale: str) -> None:
    text, keyboard = render_history_page(
        "cart", history_rows(6), page=0, pages=1, tz=UTC_TZ, locale=locale
    )
    shown = check(text)
    assert keyboard == []
    assert "cart" in shown and "1/1" in shown
    lines = [ln for ln in shown.splitlines() if ln.startswith("•")]
    assert len(lines) == 6
    assert "INC-000000" in lines[0] and "KubePodCrashLooping — cart" in lines[0]
    assert "2026-11-27 13:07 UTC" in lines[0] and "5m" in lines[0] and "alice" in lines[0]
    if locale == "zh-TW":
        assert "進行中" in lines[1] and "已修復（試運行）" in lines[1]
        assert "未做決策" in lines[0] and "修復失敗" in lines[2] and "自行恢復" in lines[4]
        assert "ongoing" not in shown and "History" not in shown
    else:
        assert "lasted 5m" in lines[0] and "no decision" in lines[0]
        assert "ongoing" in lines[1] and "fixed (dry-run)" in lines[1]
        assert "fix failed" in lines[2] and "resolved by itself" in lines[4]
    everything = check(render_history_page(None, [], page=0, pages=0, tz=UTC_TZ, locale=locale)[0])
    assert ("全部" if locale == "zh-TW" else "all") in everything
    assert ("找不到任何事件" if locale == "zh-TW" else "No incidents found.") in everything


@pytest.mark.parametrize("locale", LOCALES)
def test_history_paging_keyboards(locale: str) -> None:
    rows = history_rows(3)

    def kb(page: int, pages: int, query: str | None = "cart") -> list[list[dict]]:
        text, keyboard = render_history_page(
            query, rows, page=page, pages=pages, tz=UTC_TZ, locale=locale
        )
        assert f"{min(max(page, 0), max(pages, 1) - 1) + 1}/{max(pages, 1)}" in check(text)
        check_keyboard(keyboard)
        assert keyboard == history_keyboard(query, page=page, pages=pages, locale=locale)
        return keyboard

    def pages_of(keyboard: list[list[dict]]) -> list[int]:
        return [HistoryPageCB.unpack(b["callback_data"]).page for b in keyboard[0]]

    assert kb(0, 1) == []
    first = kb(0, 5)
    assert pages_of(first) == [1] and first[0][0]["text"].startswith("▶️")
    middle = kb(2, 5)
    assert pages_of(middle) == [1, 3]
    assert middle[0][0]["text"].startswith("◀️") and middle[0][1]["text"].startswith("▶️")
    last = kb(4, 5)
    assert pages_of(last) == [3] and last[0][0]["text"].startswith("◀️")
    assert HistoryPageCB.unpack(middle[0][0]["callback_data"]).query == "cart"
    all_pages = kb(1, 3, query=None)
    assert {HistoryPageCB.unpack(b["callback_data"]).query for b in all_pages[0]} == {""}
    assert pages_of(kb(9, 3)) == [1]  # out of range: clamped to the last page
    if locale == "zh-TW":
        assert "上一頁" in middle[0][0]["text"] and "下一頁" in middle[0][1]["text"]


def test_history_query_limit() -> None:
    longest = "q" * HISTORY_QUERY_MAX
    keyboard = history_keyboard(longest, page=10**6, pages=10**6 + 2)
    assert len(keyboard[0]) == 2
    check_keyboard(keyboard)
    cjk = "歷" * (HISTORY_QUERY_MAX // 3)  # 39 bytes
    check_keyboard(history_keyboard(cjk, page=1, pages=3))
    for bad in ("q" * (HISTORY_QUERY_MAX + 1), "歷" * 14, "host:9100"):
        with pytest.raises(ValueError):
            render_history_page(bad, [], page=0, pages=2, tz=UTC_TZ)
        with pytest.raises(ValueError):
            history_keyboard(bad, page=0, pages=1)


def test_history_query() -> None:
    assert history_query(None) is None and history_query("") is None
    assert history_query("cart") == "cart"
    assert history_query("q" * 100) == "q" * HISTORY_QUERY_MAX
    cut = history_query("歷" * 40)
    assert cut == "歷" * 13 and len(cut.encode()) <= HISTORY_QUERY_MAX
    check_keyboard(history_keyboard(cut, page=1, pages=3))


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_history_page_hostile(locale: str, value: str) -> None:
    text, keyboard = render_history_page(
        "<b>&\"'", history_rows(300, value), page=1, pages=3, tz=UTC_TZ, locale=locale
    )
    shown = check(text)
    assert "<b>&\"'" in shown
    assert re.search(r"… (?:另有 )?\d+", shown)
    check_keyboard(keyboard)


# -------------------------------------------------------------------- incidents


@pytest.mark.parametrize("locale", LOCALES)
def test_incidents(locale: str) -> None:
    link = message_link(-1001234567890, 42, 7)
    rows = [
        OpenIncidentRow(make_incident(0), "pending", link),
        OpenIncidentRow(make_incident(1, severity="warning", firing_count=1), None, None),
        OpenIncidentRow(make_incident(2, severity="weird"), "executing", "javascript:alert(1)"),
    ]
    html = render_incidents(rows, tz=TAIPEI, locale=locale)
    parsed = check_message_text(html)
    links = [e for e in parsed.entities if e["type"] == "text_link"]
    assert [e["url"] for e in links] == ["https://t.me/c/1234567890/42?thread=7"]
    lines = parsed.text.splitlines()[1:]
    assert lines[0].startswith("🔴 INC-000000") and lines[1].startswith("🟠 INC-000001")
    assert lines[2].startswith("⚪ INC-000002")
    assert "Pod shop/cart is crash looping" in lines[0]
    assert "2026-11-27 21:07 CST" in lines[0]
    if locale == "zh-TW":
        assert "3 則觸發中" in lines[0] and "等待核准" in lines[0] and "未做決策" in lines[1]
        assert "firing" not in parsed.text
    else:
        assert "3 firing" in lines[0] and "awaiting approval" in lines[0]
        assert "no decision" in lines[1] and "executing" in lines[2]


def test_incident_link_is_escaped() -> None:
    link = 'https://t.me/c/1/2?a="><script>&b=1'
    html = render_incidents([OpenIncidentRow(make_incident(), None, link)], tz=UTC_TZ)
    assert "<script>" not in html
    parsed = check_message_text(html)
    assert [e["url"] for e in parsed.entities if e["type"] == "text_link"] == [link]


@pytest.mark.parametrize("locale", LOCALES)
def test_incidents_empty(locale: str) -> None:
    shown = check(render_incidents([], tz=UTC_TZ, locale=locale))
    if locale == "zh-TW":
        assert "目前沒有未解決的事件。" in shown and "No open" not in shown
    else:
        assert "No open incidents." in shown


@pytest.mark.parametrize("locale", LOCALES)
def test_incidents_capped_at_30(locale: str) -> None:
    rows = [
        OpenIncidentRow(make_incident(i), "pending", message_link(-1001234567890, i + 1))
        for i in range(300)
    ]
    shown = check(render_incidents(rows, tz=UTC_TZ, locale=locale))
    assert len([ln for ln in shown.splitlines() if "INC-" in ln]) == 30
    assert re.search(r"… (?:另有 )?270", shown)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("value", HOSTILE)
def test_incidents_hostile(locale: str, value: str) -> None:
    rows = [
        OpenIncidentRow(
            make_incident(i, id=value, title=value, alertname=value, target=value, severity=value),
            value,
            "https://t.me/c/1/2?x=" + "&" * 400,
        )
        for i in range(300)
    ]
    shown = check(render_incidents(rows, tz=UTC_TZ, locale=locale))
    assert re.search(r"… (?:另有 )?\d+", shown)


# ----------------------------------------------------------------- message_link


@pytest.mark.parametrize(
    ("chat_id", "message_id", "thread_id", "expected"),
    [
        (-1001234567890, 42, None, "https://t.me/c/1234567890/42"),
        (-1001234567890, 42, 7, "https://t.me/c/1234567890/42?thread=7"),
        (-1000987654321, 5, None, "https://t.me/c/987654321/5"),  # -100 + 9 digits
        (-1999999999999, 5, None, "https://t.me/c/999999999999/5"),
        (-2000000000000, 5, None, None),  # beyond channel ids
        (-1000000000001, 1, None, "https://t.me/c/1/1"),
        (-1001234567890, 42, 0, "https://t.me/c/1234567890/42"),
        (-1000000000000, 42, None, None),  # not a valid channel id
        (-123456789, 42, None, None),  # basic group
        (-999999999999, 42, None, None),  # basic group, 12 digits
        (-1001, 42, None, None),  # basic group that happens to start with -100
        (123456789, 42, None, None),  # private chat
        (-1001234567890, 0, None, None),  # no such message
    ],
)
def test_message_link(
    chat_id: int, message_id: int, thread_id: int | None, expected: str | None
) -> None:
    assert message_link(chat_id, message_id, thread_id) == expected


# ----------------------------------------------------------------- chat set-up


@pytest.mark.parametrize("locale", LOCALES)
def test_not_allowed(locale: str) -> None:
    text = check(render_not_allowed(user_id=424242, tz=UTC_TZ, locale=locale))
    assert "424242" in text and "APPROVER_IDS" in text
    if locale == "zh-TW":
        assert CJK.search(text) and "Only approvers" not in text


@pytest.mark.parametrize("locale", LOCALES)
def test_migrated(locale: str) -> None:
    text = check(
        render_migrated(old_chat_id=-4012345, new_chat_id=-1002233445566, tz=UTC_TZ, locale=locale)
    )
    assert "-4012345" in text and text.count("-1002233445566") >= 2
    assert "TELEGRAM_CHAT_ID" in text
    if locale == "zh-TW":
        assert CJK.search(text) and "upgraded" not in text
    else:
        assert "upgraded" in text and "posted again" in text


@pytest.mark.parametrize("locale", LOCALES)
def test_start_text(locale: str) -> None:
    from bot.cards.card import render_message

    text = check(render_message("commands/start.html", tz=UTC_TZ, locale=locale, chat_id=-100777))
    assert "-100777" in text and "/whoami" in text and "TELEGRAM_CHAT_ID" in text
    assert "/help" in text
    if locale == "zh-TW":
        assert CJK.search(text) and "works in" not in text


# ------------------------------------------------------------------ determinism


@dataclass
class _Remote:  # any object with the RemoteLike attributes will do
    id: str
    matchers: list[Matcher]
    created_by: str
    comment: str
    ends_at: datetime


@pytest.mark.parametrize("locale", LOCALES)
def test_deterministic(locale: str) -> None:
    def everything() -> list[object]:
        silence = make_silence()
        remote = _Remote("abc", [Matcher(name="a", value="b")], "x", "y", T0 + timedelta(hours=1))
        return [
            render_help(is_approver=True, tz=TAIPEI, locale=locale),
            command_menu(locale),
            render_usage(SILENCE_USAGE, error="bad", tz=TAIPEI, locale=locale),
            render_silence_created(
                silence, open_matches=2, am_status="synced", tz=TAIPEI, locale=locale, now=T0
            ),
            render_silence_list(
                [silence], [remote], can_expire=True, tz=TAIPEI, locale=locale, now=T0
            ),
            render_silence_expired(silence, by=None, tz=TAIPEI, locale=locale),
            render_unknown_silence("S-1", tz=TAIPEI, locale=locale),
            render_history_page("cart", history_rows(5), page=1, pages=3, tz=TAIPEI, locale=locale),
            render_incidents(
                [OpenIncidentRow(make_incident(), "pending", None)], tz=TAIPEI, locale=locale
            ),
            render_not_allowed(user_id=1, tz=TAIPEI, locale=locale),
            render_migrated(old_chat_id=-1, new_chat_id=-1001, tz=TAIPEI, locale=locale),
        ]

    first, second = everything(), everything()
    assert first == second
    other = "en" if locale == "zh-TW" else "zh-TW"
    assert first[0] != render_help(is_approver=True, tz=TAIPEI, locale=other)


def test_locale_aliases() -> None:
    assert render_help(is_approver=True, tz=UTC_TZ, locale="zh_tw") == render_help(
        is_approver=True, tz=UTC_TZ, locale="zh-TW"
    )


def test_every_command_template_is_translated() -> None:
    from bot.texts import TEMPLATES_DIR

    en = {p.name for p in (TEMPLATES_DIR / "en" / "commands").glob("*.html")}
    zh = {p.name for p in (TEMPLATES_DIR / "zh-TW" / "commands").glob("*.html")}
    assert en == zh
    for name in en - {"_words.html", "menu.html"}:  # these two are all words, checked above
        assert CJK.search((TEMPLATES_DIR / "zh-TW" / "commands" / name).read_text()), name


@pytest.mark.parametrize("locale", LOCALES)
def test_incidents_say_nothing_to_approve_and_silenced_until(locale: str) -> None:
    rows = [
        OpenIncidentRow(make_incident(1), "nothing_to_approve", None),
        OpenIncidentRow(make_incident(2), "pending", None, silenced_until=T0 + timedelta(hours=2)),
        OpenIncidentRow(make_incident(3), "pending", None),
    ]
    text = check(render_incidents(rows, tz=UTC_TZ, locale=locale))
    lines = {i: next(x for x in text.splitlines() if f"INC-00000{i}" in x) for i in (1, 2, 3)}
    assert "2026-11-27 15:07 UTC" in lines[2] and "🔕" in lines[2]
    if locale == "en":
        assert lines[1].endswith("nothing to approve")
        assert lines[2].endswith("silenced until 2026-11-27 15:07 UTC")
        assert lines[3].endswith("awaiting approval")
    else:
        assert lines[1].endswith("無需核准") and lines[3].endswith("等待核准")
