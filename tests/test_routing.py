"""Routes from ROUTES_PATH: matching, continue, approvers per chat, errors, remapping."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts.routing import RoutesFileError, RouteTable, load_routes, on_call_problems

DEFAULT_CHAT = -1001000000001
PAY_CHAT = -1002000000002
DB_CHAT = -1003000000003
ALICE, BOB, CAROL, DAVE = 111, 222, 333, 444

ROUTES = """
[[route]]
name = "payments"
match = { namespace = "payments" }
chat_id = -1002000000002
topic = 42
approvers = [333]

[[route]]
name = "databases, also to on-call"
match_regex = { alertname = "Postgres.*|Redis.*" }
chat_id = -1003000000003
approvers = [444]
continue = true

[[route]]
name = "critical prod"
match = { namespace = "prod" }
match_regex = { severity = "critical|page" }
chat_id = -1001000000001

[[route]]
name = "everything else"
chat_id = -1001000000001
approvers = [222]
"""


def table(tmp_path: Path, text: str) -> RouteTable:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return load_routes(str(path), DEFAULT_CHAT, [ALICE, BOB])


def names(routes: list) -> list[str]:
    return [r.name for r in routes]


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(RoutesFileError) as caught:
        table(tmp_path, text)
    return str(caught.value)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"namespace": "payments", "alertname": "X"}, ["payments"]),
        # first match wins: payments has no continue, the database route is not reached
        ({"namespace": "payments", "alertname": "PostgresDown"}, ["payments"]),
        # continue = true: the database chat and the next match
        ({"namespace": "prod", "alertname": "PostgresDown", "severity": "critical"},
         ["databases, also to on-call", "critical prod"]),
        ({"namespace": "dev", "alertname": "RedisDown"},
         ["databases, also to on-call", "everything else"]),
        # regexes are anchored: "MyPostgresDown" and "Postgres" prefixes differ
        ({"namespace": "dev", "alertname": "MyPostgresDown"}, ["everything else"]),
        ({"namespace": "prod", "severity": "critical"}, ["critical prod"]),
        ({"namespace": "prod", "severity": "criticalish"}, ["everything else"]),
        ({"namespace": "prod"}, ["everything else"]),  # severity missing counts as ""
        ({}, ["everything else"]),  # the catch-all
    ],
)
def test_resolve(tmp_path: Path, labels: dict[str, str], expected: list[str]) -> None:
    assert names(table(tmp_path, ROUTES).resolve(labels)) == expected


def test_route_fields(tmp_path: Path) -> None:
    routes = table(tmp_path, ROUTES)
    (pay,) = routes.resolve({"namespace": "payments"})
    assert (pay.chat_id, pay.topic, pay.approvers, pay.index) == (PAY_CHAT, 42, {CAROL}, 1)
    (prod,) = routes.resolve({"namespace": "prod", "severity": "page"})
    assert prod.topic is None
    assert prod.approvers == {ALICE, BOB}  # no approvers key: APPROVER_IDS
    assert not prod.is_default


def test_nothing_matches_goes_to_the_default_route(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
match = { team = "db" }
chat_id = -1003000000003
""")
    (route,) = routes.resolve({"team": "web"})
    assert route.is_default
    assert (route.chat_id, route.approvers, route.topic) == (DEFAULT_CHAT, {ALICE, BOB}, None)


def test_only_continuing_matches_do_not_add_the_default(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
match = { team = "db" }
chat_id = -1003000000003
continue = true
""")
    assert [r.chat_id for r in routes.resolve({"team": "db"})] == [DB_CHAT]
    assert [r.chat_id for r in routes.resolve({"team": "x"})] == [DEFAULT_CHAT]


def test_one_card_per_chat_and_topic(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
name = "a"
match = { team = "db" }
chat_id = -1003000000003
continue = true

[[route]]
name = "b"
match = { team = "db" }
chat_id = -1003000000003
continue = true

[[route]]
name = "c, another topic of the same chat"
match = { team = "db" }
chat_id = -1003000000003
topic = 7
""")
    assert names(routes.resolve({"team": "db"})) == ["a", "c, another topic of the same chat"]


def test_catch_all_with_continue_may_come_first(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
name = "audit"
chat_id = -1003000000003
continue = true

[[route]]
name = "payments"
match = { namespace = "payments" }
chat_id = -1002000000002
""")
    assert names(routes.resolve({"namespace": "payments"})) == ["audit", "payments"]
    assert names(routes.resolve({"namespace": "x"})) == ["audit"]


def test_approvers_per_chat(tmp_path: Path) -> None:
    routes = table(tmp_path, ROUTES)
    assert routes.approvers_for(PAY_CHAT) == {CAROL}
    assert routes.approvers_for(DB_CHAT) == {DAVE}
    # default chat: the default approvers, plus those of every route into it
    assert routes.approvers_for(DEFAULT_CHAT) == {ALICE, BOB}
    assert routes.approvers_for(-1009) == frozenset()


def test_approvers_of_routes_into_one_chat_are_united(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
match = { team = "a" }
chat_id = -1003000000003
approvers = [333]

[[route]]
match = { team = "b" }
chat_id = -1003000000003
approvers = [444]

[[route]]
match = { team = "c" }
chat_id = -1001000000001
approvers = []
""")
    assert routes.approvers_for(DB_CHAT) == {CAROL, DAVE}
    assert routes.approvers_for(DEFAULT_CHAT) == {ALICE, BOB}


def test_chats(tmp_path: Path) -> None:
    assert table(tmp_path, ROUTES).chats() == {DEFAULT_CHAT, PAY_CHAT, DB_CHAT}


@pytest.mark.parametrize("path", [None, ""])
def test_without_a_file_everything_goes_to_the_default_chat(path: str | None) -> None:
    routes = load_routes(path, DEFAULT_CHAT, [ALICE])
    (route,) = routes.resolve({"alertname": "X"})
    assert route.is_default and route.chat_id == DEFAULT_CHAT
    assert routes.chats() == {DEFAULT_CHAT}
    assert routes.approvers_for(DEFAULT_CHAT) == {ALICE}


def test_a_file_without_routes_is_the_default(tmp_path: Path) -> None:
    routes = table(tmp_path, "# nothing yet\n")
    assert routes.routes == []
    assert routes.resolve({})[0].is_default


def test_remap_chat(tmp_path: Path) -> None:
    routes = table(tmp_path, ROUTES)
    new = -1009999999999
    assert routes.remap_chat(DEFAULT_CHAT, new) == 3  # two routes and the default
    assert routes.chats() == {new, PAY_CHAT, DB_CHAT}
    assert routes.approvers_for(new) == {ALICE, BOB}
    assert routes.approvers_for(DEFAULT_CHAT) == frozenset()
    assert [r.chat_id for r in routes.resolve({})] == [new]
    assert routes.resolve({"team": "x"})[0].name == "everything else"
    assert routes.remap_chat(-1, -2) == 0


def test_remap_the_default_chat_without_a_file() -> None:
    routes = load_routes(None, DEFAULT_CHAT, [ALICE])
    assert routes.remap_chat(DEFAULT_CHAT, -100777) == 1
    assert routes.resolve({})[0].chat_id == -100777
    assert routes.chats() == {-100777}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[route]]\nmatch = { a = \"b\" }\n", "route 1: chat_id: is required"),
        ("[[route]]\nchat_id = \"-100\"\n", "route 1: chat_id: must be a non-zero integer"),
        ("[[route]]\nchat_id = 0\n", "route 1: chat_id: must be a non-zero integer"),
        ("[[route]]\nchat_id = true\n", "route 1: chat_id: must be a non-zero integer"),
        ("[[route]]\nchat_id = 1\ntopic = 0\n", "route 1: topic: must be a positive integer"),
        ("[[route]]\nchat_id = 1\ntopic = \"x\"\n", "route 1: topic: must be a positive integer"),
        ("[[route]]\nchat_id = 1\napprovers = 111\n", "route 1: approvers: must be a list"),
        ("[[route]]\nchat_id = 1\napprovers = [\"alice\"]\n", "route 1: approvers: must be a"),
        ("[[route]]\nchat_id = 1\ncontinue = \"yes\"\n", "route 1: continue: must be true or"),
        ("[[route]]\nchat_id = 1\nname = 3\n", "route 1: name: must be a string"),
        ("[[route]]\nchat_id = 1\nmatch = \"prod\"\n", "route 1: match: must be a table"),
        ("[[route]]\nchat_id = 1\nmatch = { code = 500 }\n",
         "route 1: match.code: must be a string (quote it)"),
        ("[[route]]\nchat_id = 1\nmatch = { \"bad-name\" = \"x\" }\n",
         "route 1: match.bad-name: is not a label name"),
        ("[[route]]\nchat_id = 1\nmatch_regex = { alertname = \"Disk(\" }\n",
         "route 1: match_regex.alertname: bad regular expression 'Disk('"),
        ("[[route]]\nchat_id = 1\nmatch_regex = { alertname = \"[[:alpha:]]\" }\n",
         "route 1: match_regex.alertname: bad regular expression"),
        ("[[route]]\nchat_id = 1\nchat = 2\n", "route 1: chat: unknown field"),
        ("[[route]]\nchat_id = 1\noncall = \"@alice\"\n", "route 1: oncall: must be a list"),
        ("[[route]]\nchat_id = 1\noncall = [\"a b\"]\n",
         "route 1: oncall: 'a b' is neither a username"),
        ("[[route]]\nchat_id = 1\nescalate_to = [-5]\n", "route 1: escalate_to: -5 is neither"),
        ("[[route]]\nchat_id = 1\nremind_after = \"soon\"\n",
         "route 1: remind_after: not a duration: 'soon'"),
        ("[[route]]\nchat_id = 1\nremind_every = \"0s\"\n",
         "route 1: remind_every: must be longer than zero"),
        ("[[route]]\nchat_id = 1\nremind_max = -1\n", "route 1: remind_max: must be a whole"),
        ("[[route]]\nchat_id = 1\nremind_max = true\n", "route 1: remind_max: must be a whole"),
        ("[[route]]\nname = \"pay\"\nchat_id = 1\n\n[[route]]\nname = \"db\"\ntopik = 3\n"
         "chat_id = 2\n",
         "route 2 (db): topik: unknown field"),
        ("[[routes]]\nchat_id = 1\n", "unknown top-level key 'routes'"),
        ("route = 1\n", "'route' must be an array of tables"),
        ("route = [1, 2]\n", "route 1: must be a table"),
        ("[route]\nchat_id = 1\n", "'route' must be an array of tables"),
        ("[[route]]\nchat_id = \n", "not valid TOML"),
        ("[[route]]\nname = \"all\"\nchat_id = 1\n\n[[route]]\nname = \"pay\"\n"
         "match = { a = \"b\" }\nchat_id = 2\n",
         "route 1 (all): match: matches everything and has no continue = true, "
         "so route 2 (pay) is never reached"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    got = error(tmp_path, text)
    assert message in got
    assert got.startswith(str(tmp_path / "routes.toml"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RoutesFileError, match="no such file"):
        load_routes(str(tmp_path / "nope.toml"), DEFAULT_CHAT, [])


def test_on_call_people_pace_and_fallbacks(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
match = { namespace = "payments" }
chat_id = -1002000000002
oncall = ["@pay_lead", 555, "pay_two"]
escalate_to = ["@boss"]
remind_after = "2m"
remind_max = 5

[[route]]
chat_id = -1001000000001
""")
    pay = routes.on_call_at(1, PAY_CHAT)
    assert pay.reminded == ("pay_lead", 555, "pay_two") and pay.escalate_to == ("boss",)
    assert (pay.pace.after, pay.pace.every, pay.pace.max) == (timedelta(minutes=2),
                                                             timedelta(minutes=10), 5)
    rest = routes.on_call_at(2, DEFAULT_CHAT)
    assert rest.reminded == (ALICE, BOB) and rest.escalate_to == ()  # the approvers
    # A card planned by a route that has moved since (file edited): the chat's first route.
    assert routes.on_call_at(7, PAY_CHAT) == pay
    assert load_routes(None, DEFAULT_CHAT, [BOB]).on_call_at(0, DEFAULT_CHAT).reminded == (BOB,)


def test_on_call_problems_name_the_route(tmp_path: Path) -> None:
    routes = table(tmp_path, """
[[route]]
name = "quiet"
match = { namespace = "batch" }
chat_id = -1002000000002
escalate_to = ["@boss"]
remind_max = 0

[[route]]
chat_id = -1001000000001
approvers = []
""")
    assert [problem for problem, _ in on_call_problems(routes)] == [
        "route 1 (quiet): escalate_to is set but remind_max is 0, so nobody is ever reminded "
        "and the escalation never comes",
        "route 2: reminders mention nobody (no oncall and no approvers)",
    ]
    assert on_call_problems(load_routes(None, DEFAULT_CHAT, [ALICE])) == []
