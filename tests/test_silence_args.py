"""Arguments of /silence, /unsilence and /history."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2.runtime import Macro

from bot import command_args, texts
from bot.chat import commands as views
from bot.chat import history
from bot.chat.history import HistoryArgs, parse_history_args
from bot.command_args import CODES, ArgsError, error_text
from bot.models import Matcher
from bot.silences import arguments as silence_args
from bot.silences.arguments import (
    SILENCE_USAGE,
    parse_silence_args,
    parse_unsilence_args,
)
from bot.silences.matching import matcher_matches

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
UTC_TZ = ZoneInfo("UTC")
TAIPEI = ZoneInfo("Asia/Taipei")
BERLIN = ZoneInfo("Europe/Berlin")


def m(name: str, value: str, regex: bool = False) -> Matcher:
    return Matcher(name=name, value=value, is_regex=regex)


# ------------------------------------------------------------------ /silence: good


@pytest.mark.parametrize(
    ("text", "matchers", "incident", "duration", "reason"),
    [
        ("service=api 30m", [m("service", "api")], None, timedelta(minutes=30), ""),
        (
            "service=api namespace=prod 2h deploy in progress",
            [m("service", "api"), m("namespace", "prod")], None, timedelta(hours=2),
            "deploy in progress",
        ),
        ("alertname=~Disk.* 1d", [m("alertname", "Disk.*", True)], None, timedelta(days=1), ""),
        ("service=api 90s", [m("service", "api")], None, timedelta(seconds=90), ""),
        ("service=api 1h30m", [m("service", "api")], None, timedelta(minutes=90), ""),
        ("service=api 1h 30m", [m("service", "api")], None, timedelta(minutes=90), ""),
        ("service=api 2H", [m("service", "api")], None, timedelta(hours=2), ""),
        ("service=api 1.5h", [m("service", "api")], None, timedelta(minutes=90), ""),
        ("service=api 1w", [m("service", "api")], None, timedelta(days=7), ""),
        ("service=api 1m", [m("service", "api")], None, timedelta(minutes=1), ""),
        ("service=api 30d", [m("service", "api")], None, timedelta(days=30), ""),
        # quotes: spaces, curly quotes from phones, escapes, operators inside quotes
        ('service="my api" 1h', [m("service", "my api")], None, timedelta(hours=1), ""),
        ("service=“my api” 1h", [m("service", "my api")], None, timedelta(hours=1), ""),
        ('service="say \\"hi\\"" 1h', [m("service", 'say "hi"')], None, timedelta(hours=1), ""),
        ('service="~x" 1h', [m("service", "~x")], None, timedelta(hours=1), ""),
        ('service="=x" 1h', [m("service", "=x")], None, timedelta(hours=1), ""),
        ('alertname=~"Disk .*" 1h', [m("alertname", "Disk .*", True)], None,
         timedelta(hours=1), ""),
        ("alertname=~Disk\\d+ 1h", [m("alertname", "Disk\\d+", True)], None,
         timedelta(hours=1), ""),
        ('alertname=~"Disk\\d+" 1h', [m("alertname", "Disk\\d+", True)], None,
         timedelta(hours=1), ""),
        ('alertname=~"Disk\\\\d+" 1h', [m("alertname", "Disk\\d+", True)], None,
         timedelta(hours=1), ""),
        # an empty exact value means "label absent", fine next to a real matcher
        ('team="" service=api 1h', [m("team", ""), m("service", "api")], None,
         timedelta(hours=1), ""),
        ("INC-7K3F9Q 1h", [], "INC-7K3F9Q", timedelta(hours=1), ""),
        ("inc-7k3f9q 2h flapping", [], "INC-7K3F9Q", timedelta(hours=2), "flapping"),
        ("/silence@opsgate_bot service=api 1h", [m("service", "api")], None,
         timedelta(hours=1), ""),
        ("  service=api   1h   spaced   out  ", [m("service", "api")], None,
         timedelta(hours=1), "spaced   out"),
        ('service=api 1h "fully quoted"', [m("service", "api")], None, timedelta(hours=1),
         "fully quoted"),
        ('service=api 1h "unbalanced', [m("service", "api")], None, timedelta(hours=1),
         '"unbalanced'),
        ("service=api 1h a=b is just text", [m("service", "api")], None, timedelta(hours=1),
         "a=b is just text"),
        ("service=api 1h line one\nline two", [m("service", "api")], None,
         timedelta(hours=1), "line one\nline two"),
    ],
)
def test_silence_good(
    text: str, matchers: list[Matcher], incident: str | None, duration: timedelta, reason: str
) -> None:
    args = parse_silence_args(text, NOW, UTC_TZ)
    assert args.matchers == matchers
    assert args.incident_id == incident
    assert args.ends_at == NOW + duration
    assert args.ends_at.tzinfo is UTC
    assert args.reason == reason


def test_reason_is_clipped_to_500_characters() -> None:
    args = parse_silence_args("service=api 1h " + "x" * 600, NOW, UTC_TZ)
    assert len(args.reason) == 500
    assert args.reason.endswith("…")


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_silence_args("service=api 1h", datetime(2026, 1, 1), UTC_TZ)


# ------------------------------------------------------------------ /silence: bad


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "What should be silenced"),
        (None, "What should be silenced"),
        ("/silence", "What should be silenced"),
        ("2h", "silence first"),
        ("until 09:00", "silence first"),
        ("service=api", "Missing duration"),
        ("INC-7K3F9Q", "Missing duration"),
        ("hello 2h", "'hello' is not a matcher"),
        ("service=api soon", "'soon' is not a duration"),
        ("service=api 500ms", "'500ms' is not a duration"),
        ("service=api 30", "'30' is not a duration"),
        ("service=api -1h", "'-1h' is not a duration"),
        ("=api 1h", "Label name missing"),
        ("1service=api 1h", "'1service' is not a label name"),
        ("ser-vice=api 1h", "'ser-vice' is not a label name"),
        ('"service"=api 1h', "is not a label name"),
        ("service!=api 1h", "Negative matchers (!=)"),
        ("service!~api 1h", "Negative matchers (!~)"),
        ("service~api 1h", "'service~api' is not a matcher"),
        ("service==api 1h", "single ="),
        ("alertname=~Disk( 1h", "Bad regular expression 'Disk('"),
        ("alertname=~[[:alpha:]] 1h", "Bad regular expression"),
        ("alertname=~(?!Watchdog).* 1h", "lookaround or backreferences"),
        ("alertname=~(?<=x)y 1h", "lookaround or backreferences"),
        ("alertname=~(a)\\1 1h", "lookaround or backreferences"),
        ("alertname=~.* 1h", "non-empty value"),
        ("service= 1h", "non-empty value"),
        ('service="" team=~.* 1h', "non-empty value"),
        ("INC-7K3F9Q INC-8K3F9Q 1h", "Only one incident id"),
        ("INC-7K3F9Q service=api 1h", "either an incident id or label matchers"),
        ("INC-7K3F9 1h", "'INC-7K3F9' is not an incident id"),
        ("INC-7K3F9U 1h", "'INC-7K3F9U' is not an incident id"),
        ('service="my api 1h', "Unclosed quote"),
        ("service=api 30s", "Too short"),
        ("service=api 0m", "Too short"),
        ("service=api 31d", "Too long"),
        ("service=api 30d1s", "Too long"),
        ("service=api 20d 20d", "Too long"),
        ("service=api 99999999999999999999999d", "Too long"),
        ("service=api until", "Until when"),
        ("service=api until 9am", "'9am' is not a time of day"),
        ("service=api until 24:00", "'24:00' is not a time of day"),
        ("service=api until 12:60", "'12:60' is not a time of day"),
        ("service=api until 2026-02-30 09:00", "'2026-02-30' is not a date"),
        ("service=api until 2026-12-01", "Add a time of day"),
        ("service=api until 2026-05-01 09:00", "2026-05-01 09:00 (UTC) is in the past"),
        ("service=api until 2026-12-01 09:00", "Too long"),
        ("service=api until 12:00:30", "is not a time of day"),
    ],
)
def test_silence_bad(text: str | None, message: str) -> None:
    with pytest.raises(ArgsError) as caught:
        parse_silence_args(text, NOW, UTC_TZ)
    assert caught.value.code in CODES
    assert message in error_text(caught.value, "en")
    # str()/.message stay as an English debugging aid, from the same template
    assert str(caught.value) == caught.value.message == error_text(caught.value, "en")


def test_error_messages_clip_long_tokens() -> None:
    with pytest.raises(ArgsError) as caught:
        parse_silence_args("x" * 300 + " 1h", NOW, UTC_TZ)
    assert caught.value.code == "not_a_matcher"
    assert len(error_text(caught.value, "en")) < 120
    assert len(error_text(caught.value, "zh-TW")) < 120


# ------------------------------------------------------------------ until, in local time


@pytest.mark.parametrize(
    ("tz", "now", "text", "ends_at"),
    [
        # Asia/Taipei is UTC+8 all year. 08:30 local -> 09:00 the same day.
        (TAIPEI, datetime(2026, 6, 1, 0, 30, tzinfo=UTC), "until 09:00",
         datetime(2026, 6, 1, 1, 0, tzinfo=UTC)),
        # 09:30 local -> 09:00 tomorrow
        (TAIPEI, datetime(2026, 6, 1, 1, 30, tzinfo=UTC), "until 09:00",
         datetime(2026, 6, 2, 1, 0, tzinfo=UTC)),
        # exactly 09:00 local -> tomorrow, not "now"
        (TAIPEI, datetime(2026, 6, 1, 1, 0, tzinfo=UTC), "until 09:00",
         datetime(2026, 6, 2, 1, 0, tzinfo=UTC)),
        # 23:00 UTC is already 07:00 the next local day: "today" is the local date
        (TAIPEI, datetime(2026, 6, 1, 23, 0, tzinfo=UTC), "until 9:00",
         datetime(2026, 6, 2, 1, 0, tzinfo=UTC)),
        (TAIPEI, datetime(2026, 6, 1, 0, 0, tzinfo=UTC), "until 2026-12-01 09:00",
         None),  # > 30 days: rejected, see below
        (TAIPEI, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), "until 2026-12-01 09:00",
         datetime(2026, 12, 1, 1, 0, tzinfo=UTC)),
        (TAIPEI, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), "until 2026-12-01T09:00",
         datetime(2026, 12, 1, 1, 0, tzinfo=UTC)),
        # Europe/Berlin, spring forward on 2026-03-29 (02:00 CET -> 03:00 CEST):
        # 10:00 CET on the 28th -> 09:00 CEST on the 29th is 22 hours, not 23.
        (BERLIN, datetime(2026, 3, 28, 9, 0, tzinfo=UTC), "until 09:00",
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # before 09:00 on the DST day itself
        (BERLIN, datetime(2026, 3, 29, 5, 0, tzinfo=UTC), "until 09:00",
         datetime(2026, 3, 29, 7, 0, tzinfo=UTC)),
        # 02:30 does not exist that night: it lands after the jump (03:30 CEST)
        (BERLIN, datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "until 02:30",
         datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # fall back on 2026-10-25 (03:00 CEST -> 02:00 CET): 10:00 CEST -> 09:00 CET is 24 h
        (BERLIN, datetime(2026, 10, 24, 8, 0, tzinfo=UTC), "until 09:00",
         datetime(2026, 10, 25, 8, 0, tzinfo=UTC)),
        # 02:30 happens twice that night: the first one (CEST), the shorter silence
        (BERLIN, datetime(2026, 10, 24, 22, 30, tzinfo=UTC), "until 02:30",
         datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        (BERLIN, datetime(2026, 11, 20, 0, 0, tzinfo=UTC), "until 2026-12-01 09:00",
         datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
        (BERLIN, datetime(2026, 7, 1, 0, 0, tzinfo=UTC), "UNTIL 2026-07-01 09:00",
         datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_until_local_time(
    tz: ZoneInfo, now: datetime, text: str, ends_at: datetime | None
) -> None:
    if ends_at is None:
        with pytest.raises(ArgsError) as caught:
            parse_silence_args(f"service=api {text}", now, tz)
        assert caught.value.code == "too_long"
        assert "Too long" in error_text(caught.value, "en")
        return
    args = parse_silence_args(f"service=api {text} maintenance", now, tz)
    assert args.ends_at == ends_at
    assert args.ends_at.tzinfo is UTC
    assert args.reason == "maintenance"


def test_relative_durations_are_elapsed_time_across_dst() -> None:
    # 1d from 12:00 CET the day before spring forward is 13:00 CEST: 24 real hours.
    now = datetime(2026, 3, 28, 11, 0, tzinfo=UTC)
    assert parse_silence_args("service=api 1d", now, BERLIN).ends_at == now + timedelta(days=1)


def test_until_less_than_a_minute_away_is_too_short() -> None:
    now = datetime(2026, 6, 1, 0, 59, 30, tzinfo=UTC)  # 08:59:30 in Taipei
    with pytest.raises(ArgsError) as caught:
        parse_silence_args("service=api until 09:00", now, TAIPEI)
    assert caught.value.code == "too_short"
    assert "Too short" in error_text(caught.value, "en")


def test_until_in_the_past_names_the_zone() -> None:
    with pytest.raises(ArgsError) as caught:
        parse_silence_args("service=api until 2026-01-01 09:00", NOW, TAIPEI)
    assert caught.value.code == "in_the_past"
    assert caught.value.params == {"local": "2026-01-01 09:00", "tz": "Asia/Taipei"}
    assert error_text(caught.value, "en") == "2026-01-01 09:00 (Asia/Taipei) is in the past."
    assert "2026-01-01 09:00（Asia/Taipei）" in error_text(caught.value, "zh-TW")


# ------------------------------------------------------------------ matcher semantics


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("alertname=~Disk.*", {"alertname": "DiskFull"}, True),
        ("alertname=~Disk.*", {"alertname": "NodeDiskFull"}, False),  # anchored at start
        ("alertname=~Disk", {"alertname": "DiskFull"}, False),  # anchored at end
        ("alertname=~Disk|Node", {"alertname": "Node"}, True),
        ("alertname=~Disk|Node", {"alertname": "NodeDown"}, False),  # the whole alternation
        ("alertname=~Disk|Node", {"alertname": "BigDisk"}, False),
        ('service=~"my .*"', {"service": "my api"}, True),
        ("service=~api|", {}, True),  # a missing label is "", as in Alertmanager
        ("service=api", {}, False),
        ("service=api", {"service": "api2"}, False),
        ('service="my api"', {"service": "my api"}, True),
        ("alertname=~Disk\\d+", {"alertname": "Disk42"}, True),
        ("alertname=~Disk\\d+", {"alertname": "Diskd"}, False),
    ],
)
def test_parsed_matchers_follow_alertmanager_semantics(
    text: str, labels: dict[str, str], matches: bool
) -> None:
    args = parse_silence_args(f"{text} severity=~.+ 1h", NOW, UTC_TZ)
    assert matcher_matches(args.matchers[0], labels) is matches


@pytest.mark.parametrize("pattern", ["(a|a)*b", "(a+)+b", "(.*)*b", ".*.*.*.*.*.*b"])
def test_a_regex_that_backtracks_forever_in_python_is_matched_in_linear_time(
    pattern: str,
) -> None:
    """Every notification is matched against every silence in the one event loop: a
    pattern Python's re takes exponential (or n**6) time on must not hold it."""
    args = parse_silence_args(f"alertname=~{pattern} 1h", NOW, UTC_TZ)
    labels = {"alertname": "a" * 20_000}
    started = time.monotonic()
    assert matcher_matches(args.matchers[0], labels) is False
    assert time.monotonic() - started < 1.0  # Python's re: 2**20000 steps for the first


# ------------------------------------------------------------------ /unsilence


@pytest.mark.parametrize(
    ("text", "silence_id"),
    [
        ("S-1A2B3C", "S-1A2B3C"),
        ("s-1a2b3c", "S-1A2B3C"),
        ("  S-ABCDEF  ", "S-ABCDEF"),
        ("/unsilence@opsgate_bot S-1A2B3C", "S-1A2B3C"),
    ],
)
def test_unsilence_good(text: str, silence_id: str) -> None:
    assert parse_unsilence_args(text) == silence_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Which silence"),
        (None, "Which silence"),
        ("S-1A2B3", "is not a silence id"),
        ("S-1A2B3C4", "is not a silence id"),
        ("1A2B3C", "is not a silence id"),
        ("INC-7K3F9Q", "is not a silence id"),
        ("S-1A2B3C S-4D5E6F", "one silence id"),
        ("S-1A2B3C because", "one silence id"),
    ],
)
def test_unsilence_bad(text: str | None, message: str) -> None:
    with pytest.raises(ArgsError) as caught:
        parse_unsilence_args(text)
    assert message in error_text(caught.value, "en")


# ------------------------------------------------------------------ /history


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", HistoryArgs(None, 10)),
        (None, HistoryArgs(None, 10)),
        ("api", HistoryArgs("api", 10)),
        ("api 5", HistoryArgs("api", 5)),
        ("25", HistoryArgs(None, 25)),
        ("1", HistoryArgs(None, 1)),
        ("KubePodCrashLooping 50", HistoryArgs("KubePodCrashLooping", 50)),
        ("inc-7k3f9q 3", HistoryArgs("INC-7K3F9Q", 3)),
        ('"404"', HistoryArgs("404", 10)),  # quoted: a name, not n
        ('"my service" 2', HistoryArgs("my service", 2)),
        ("/history@opsgate_bot api 1", HistoryArgs("api", 1)),
    ],
)
def test_history_good(text: str | None, expected: HistoryArgs) -> None:
    assert parse_history_args(text) == expected


def test_history_incident_id() -> None:
    assert parse_history_args("inc-7k3f9q").incident_id == "INC-7K3F9Q"
    assert parse_history_args("api").incident_id is None
    assert parse_history_args("").incident_id is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api 0", "between 1 and 50"),
        ("api 51", "between 1 and 50"),
        ("100", "between 1 and 50"),
        ("api -1", "between 1 and 50"),
        ("api db", "Give one target"),
        ("api db 5", "Give one target"),
        ('"unclosed', "Unclosed quote"),
    ],
)
def test_history_bad(text: str, message: str) -> None:
    with pytest.raises(ArgsError) as caught:
        parse_history_args(text)
    assert message in error_text(caught.value, "en")


# ------------------------------------------------------------------ error texts (templates)

_CJK = re.compile(r"[\u4e00-\u9fff]")

# One real input per ArgsError code: the texts are checked as the parsers fill them in.
_EXAMPLES: list[tuple[Callable[[str], object], str, str]] = [
    (lambda t: parse_silence_args(t, NOW, UTC_TZ), text, code)
    for text, code in [
        ('service="my api 1h', "unclosed_quote"),
        ("hello 2h", "not_a_matcher"),
        ("=api 1h", "label_missing"),
        ("service!=api 1h", "negative_matcher"),
        ("service==api 1h", "double_equals"),
        ("1service=api 1h", "bad_label_name"),
        ("alertname=~Disk( 1h", "bad_regex"),
        ("alertname=~(?!Watchdog).* 1h", "regex_not_re2"),
        ("service=api 31d", "too_long"),
        ("service=api 30s", "too_short"),
        ("service=api until 9am", "not_a_time"),
        ("service=api until 2026-02-30 09:00", "not_a_date"),
        ("service=api until", "until_what"),
        ("service=api until 2026-12-01", "add_time_of_day"),
        ("service=api until 2026-05-01 09:00", "in_the_past"),
        ("", "nothing_to_silence"),
        ("service=api", "missing_duration"),
        ("INC-7K3F9Q INC-8K3F9Q 1h", "one_incident"),
        ("INC-7K3F9 1h", "not_an_incident_id"),
        ("2h", "order"),
        ("service=api soon", "not_a_duration"),
        ("INC-7K3F9Q service=api 1h", "ids_and_matchers"),
        ("alertname=~.* 1h", "all_empty"),
    ]
] + [
    (parse_unsilence_args, "", "which_silence"),
    (parse_unsilence_args, "S-1A2B3C because", "one_silence_id"),
    (parse_unsilence_args, "S-1A2B3", "not_a_silence_id"),
    (parse_history_args, "api 51", "n_range"),
    (parse_history_args, "api db", "one_query"),
]


def _raised(parse: Callable[[str], object], text: str) -> ArgsError:
    with pytest.raises(ArgsError) as caught:
        parse(text)
    return caught.value


def _macros(locale: str) -> dict[str, Macro]:
    module = texts.ENV.get_template(f"{locale}/commands/args_errors.html").module
    return {k: v for k, v in vars(module).items() if isinstance(v, Macro)}


def test_codes_list_every_code_the_parsers_raise() -> None:
    raised: set[str] = set()
    for module in (command_args, silence_args, history):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        raised |= set(re.findall(r'ArgsError\(\s*"(\w+)"', source))
    assert raised == set(CODES)
    assert len(CODES) == len(set(CODES))
    assert {code for _, _, code in _EXAMPLES} == set(CODES)


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_every_code_has_a_macro_in_each_locale(locale: str) -> None:
    # Looked up in the locale's own file: no silent fallback to English.
    assert set(_macros(locale)) == set(CODES)


@pytest.mark.parametrize(("parse", "text", "code"), _EXAMPLES, ids=[c for _, _, c in _EXAMPLES])
def test_error_text_per_locale(parse: Callable[[str], object], text: str, code: str) -> None:
    exc = _raised(parse, text)
    assert exc.code == code
    for locale in ("en", "zh-TW"):
        # The macro declares exactly the values the raise site passes: none is dropped.
        assert set(_macros(locale)[code].arguments) == set(exc.params), locale
    en, zh = error_text(exc, "en"), error_text(exc, "zh-TW")
    assert en and not _CJK.search(en)
    assert _CJK.search(zh), zh
    assert error_text(exc, "zh_tw") == zh  # locale spelled like the settings may spell it
    assert error_text(exc, "fr") == en  # unknown locale: English
    for value in exc.params.values():
        assert str(value) in en
        assert str(value) in zh
    assert "\n" not in en + zh
    assert "  " not in en + zh


def test_error_text_gives_hostile_values_back_as_plain_text() -> None:
    exc = _raised(lambda t: parse_silence_args(t, NOW, UTC_TZ), "<script>& 1h")
    assert exc.code == "not_a_matcher"
    assert exc.params == {"token": "'<script>&'"}
    assert error_text(exc, "en").startswith("'<script>&' is not a matcher")
    assert "'<script>&'" in error_text(exc, "zh-TW")
    # Text that merely looks like an entity is the user's text too, and stays as typed.
    entity = _raised(parse_unsilence_args, "&lt;b&gt;")
    assert error_text(entity, "en") == "'&lt;b&gt;' is not a silence id (like S-1A2B3C)."


@pytest.mark.parametrize("locale", ["en", "zh-TW"])
def test_usage_view_escapes_the_error_text_exactly_once(locale: str) -> None:
    exc = _raised(lambda t: parse_silence_args(t, NOW, UTC_TZ), "<script>& 1h")
    html_text = views.render_usage(
        SILENCE_USAGE, error=error_text(exc, locale), tz=UTC_TZ, locale=locale
    )
    assert "<script>" not in html_text
    assert "&lt;script&gt;&amp;" in html_text
    assert "&amp;lt;" not in html_text
    assert texts.plain(html_text).count("'<script>&'") == 1
