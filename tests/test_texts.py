"""bot.texts: environment, filters, locale fallback, toasts, buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2 import UndefinedError

from bot import texts
from bot.texts import ENV, TEMPLATES_DIR, button, clip, duration, render, resolve_locale, toast

T = datetime(2026, 11, 27, 13, 7, 56, tzinfo=UTC)

TOASTS = {
    "approved_executing": {},
    "approval_recorded": {"count": 1, "required": 2},
    "already_approved": {},
    "rejected": {},
    "not_allowed": {"user_id": 4242},
    "silence_not_allowed": {"user_id": 4242},
    "stale_card": {},
    "unknown_incident": {},
    "already_decided": {"state": "approved"},
    "reanalyzing": {},
    "reanalyze_refused": {"state": "executing"},
    "silenced": {},
    "already_silenced": {},
    "playbook_saved": {"name": "x" * 500},
    "working": {},
    "silence_expired": {},
    "unknown_silence": {},
    "unknown_button": {},
    "wrong_message": {},
    "not_here": {},
    "incident_resolved": {},
}
BUTTONS = [
    "approve",
    "reject",
    "details",
    "history",
    "reanalyze",
    "silence",
    "playbook",
    "source",
    "runbook",
]


def test_templates_dir_is_top_level() -> None:
    assert TEMPLATES_DIR == Path(texts.__file__).resolve().parent.parent / "templates"
    assert (TEMPLATES_DIR / "en" / "card.html").is_file()


def test_autoescape_on_for_every_template_kind() -> None:
    for name in ("x.html", "x.txt", "x.j2", "x"):
        assert ENV.autoescape(name) is True
    assert ENV.from_string("{{ v }}").render(v="<b>&") == "&lt;b&gt;&amp;"


def test_strict_undefined() -> None:
    with pytest.raises(UndefinedError):
        ENV.from_string("{{ missing }}").render()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (59.9, "59s"),
        (60, "1m"),
        (12 * 60 + 30, "12m"),
        (3600, "1h"),
        (3900, "1h 5m"),
        (86400, "1d"),
        (2 * 86400 + 3 * 3600 + 59, "2d 3h"),
        (-5, "0s"),
        (timedelta(minutes=12), "12m"),
    ],
)
def test_duration(seconds, text) -> None:
    assert duration(seconds) == text


def test_dt_and_hhmm_use_zone_abbreviation() -> None:
    assert texts.dt(T, ZoneInfo("UTC")) == "2026-11-27 13:07 UTC"
    assert texts.hhmm(T, ZoneInfo("UTC")) == "13:07 UTC"
    assert texts.dt(T, ZoneInfo("Europe/Berlin")) == "2026-11-27 14:07 CET"
    assert texts.hhmm(T, ZoneInfo("Asia/Taipei")) == "21:07 CST"
    # naive values are stored UTC
    assert texts.hhmm(T.replace(tzinfo=None), ZoneInfo("UTC")) == "13:07 UTC"


def test_at_shows_date_only_when_day_differs() -> None:
    tz = ZoneInfo("UTC")
    assert texts.at(T + timedelta(minutes=3), tz, T) == "13:10 UTC"
    assert texts.at(T + timedelta(days=1), tz, T) == "2026-11-28 13:07 UTC"
    assert texts.at(T, tz) == "2026-11-27 13:07 UTC"


def test_clip_works_on_raw_values() -> None:
    assert clip("abcdef", 4) == "abc…"
    assert clip("abc", 4) == "abc"
    assert clip("x", 0) == ""
    # clipping then escaping never leaves half an entity
    out = ENV.from_string("{{ v|clip(5) }}").render(v="&&&&&&&&")
    assert out == "&amp;&amp;&amp;&amp;…"


def test_clean_drops_controls_and_lone_surrogates() -> None:
    assert texts.clean("a\x00b\x1bc\r\nd\ud800") == "abc\nd?"


def test_locale_resolution_and_fallback() -> None:
    assert resolve_locale("zh_tw") == "zh-TW"
    assert resolve_locale("ZH-TW") == "zh-TW"
    assert resolve_locale("fr") == "en"
    assert resolve_locale(None) == "en"
    assert resolve_locale("../etc") == "en"
    assert "Approve" in button("approve", "fr")


def test_render_name_param_does_not_clash_with_ctx() -> None:
    out = render("thread/reason_recorded.html", name="bob", reason="<oops>")
    assert "bob" in out and "&lt;oops&gt;" in out


def test_toasts_are_plain_and_short() -> None:
    for key, ctx in TOASTS.items():
        for locale in ("en", "zh-TW"):
            text = toast(key, locale=locale, **ctx)
            assert text and len(text) <= 200, (key, locale)
            assert "&amp;" not in text and "&lt;" not in text
    assert toast("approved_executing") == "Approved — executing"
    assert toast("approval_recorded", count=1, required=2) == "Approval recorded (1/2)"
    assert toast("already_approved") == "You already approved — another approver is needed"
    assert toast("not_allowed", user_id=4242) == (
        "You are not allowed to approve in this chat. "
        "Ask an admin to add your id (4242) to APPROVER_IDS."
    )
    assert toast("stale_card") == "This card is out of date — use the latest card"
    assert toast("unknown_incident") == "Unknown incident — it may predate a database reset"
    assert toast("already_decided", state="rejected") == "Already decided: rejected"


def test_toast_is_not_html_escaped_and_ignores_extra_ctx() -> None:
    assert toast("playbook_saved", name='a<b>&"c"', extra=1) == 'Saved as playbook “a<b>&"c"”'


def test_unknown_toast_raises() -> None:
    with pytest.raises(KeyError):
        toast("nope")


def test_button_labels() -> None:
    assert [button(k) for k in BUTTONS] == [
        "✅ Approve",
        "❌ Reject",
        "🔍 Details",
        "📜 History",
        "🔄 Re-analyze",
        "🔕 Silence 1h",
        "💾 Save as playbook",
        "📈 Source",
        "📖 Runbook",
    ]
    zh = [button(k, "zh-TW") for k in BUTTONS]
    assert all(z != e for z, e in zip(zh, [button(k) for k in BUTTONS], strict=True))
    assert zh[0].startswith("✅")


def test_zh_tw_has_every_en_template() -> None:
    en = {p.relative_to(TEMPLATES_DIR / "en") for p in (TEMPLATES_DIR / "en").rglob("*.html")}
    zh = {p.relative_to(TEMPLATES_DIR / "zh-TW") for p in (TEMPLATES_DIR / "zh-TW").rglob("*.html")}
    assert en and en == zh


def test_zh_tw_templates_import_their_own_locale() -> None:
    for path in (TEMPLATES_DIR / "zh-TW").rglob("*.html"):
        assert '"en/' not in path.read_text(encoding="utf-8"), path
