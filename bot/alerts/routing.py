"""Alert routing: which chat (and forum topic) gets an incident, and who may approve there.

Routes come from a TOML file (ROUTES_PATH), tried in order like Alertmanager's routes:

    [[route]]
    name = "payments"
    match = { namespace = "payments" }           # exact label values
    match_regex = { severity = "critical|page" }  # whole value must match
    chat_id = -1001234567890
    topic = 42                                    # message_thread_id of an existing topic
    approvers = [111, 222]                        # default: APPROVER_IDS
    continue = true                               # also post to later matching routes
    oncall = ["@alice", 333]                      # reminded while nobody reacts (default:
                                                  # the approvers); usernames or user ids
    escalate_to = ["@lead"]                       # mentioned once after the last reminder
    remind_after = "5m"                           # default REMIND_AFTER
    remind_every = "10m"                          # default REMIND_EVERY
    remind_max = 3                                # default REMIND_MAX (0: no reminders)

The first matching route wins; with `continue = true` later matches are added too. A route
without match keys matches everything. When nothing matches, the default route is used:
TELEGRAM_CHAT_ID with APPROVER_IDS. A label that is absent counts as "" (as in silences).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.durations import parse_duration
from bot.models import OnCall, Pace, Person

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FIELDS = frozenset({"name", "match", "match_regex", "chat_id", "topic", "approvers", "continue",
                     "oncall", "escalate_to", "remind_after", "remind_every", "remind_max"})
_USERNAME = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")


class RoutesFileError(ValueError):
    """The routes file cannot be used; the message names the route (1-based) and the field."""


@dataclass(frozen=True)
class Route:
    chat_id: int
    approvers: frozenset[int]
    topic: int | None = None
    match: tuple[tuple[str, str], ...] = ()
    match_regex: tuple[tuple[str, re.Pattern[str]], ...] = ()
    continue_: bool = False
    name: str = ""
    index: int = 0  # position in the file, from 1; 0 for the default route
    is_default: bool = False
    oncall: tuple[Person, ...] = ()  # empty: the approvers
    escalate_to: tuple[Person, ...] = ()
    pace: Pace = field(default_factory=Pace)

    @property
    def on_call(self) -> OnCall:
        """Reminders mention the on-call people, or else the approvers."""
        return OnCall(self.oncall or tuple(sorted(self.approvers)), self.escalate_to, self.pace)

    @property
    def catch_all(self) -> bool:
        return not self.match and not self.match_regex

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k, "") == v for k, v in self.match) and all(
            p.fullmatch(labels.get(k, "")) for k, p in self.match_regex
        )


@dataclass
class RouteTable:
    routes: list[Route]
    default: Route

    def resolve(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an incident with these labels goes to, in file order, never empty.

        One card per (chat, topic): a second matching route to the same place adds nothing.
        """
        found: list[Route] = []
        places: set[tuple[int, int | None]] = set()
        for route in self.routes:
            if not route.matches(labels):
                continue
            if (route.chat_id, route.topic) not in places:
                places.add((route.chat_id, route.topic))
                found.append(route)
            if not route.continue_:
                break
        return found or [self.default]

    def approvers_for(self, chat_id: int) -> frozenset[int]:
        """Who may approve in this chat: everyone named by a route that posts there.

        Authority is per chat, not per route: an approver of any route into the chat may
        approve every card in it.
        """
        approvers: set[int] = set()
        for route in [*self.routes, self.default]:
            if route.chat_id == chat_id:
                approvers |= route.approvers
        return frozenset(approvers)

    def route_at(self, index: int, chat_id: int) -> Route:
        """The route a card was planned by (its position in the file). A file changed since
        then may have moved it: then the first route into that chat, or the default."""
        if index == 0 and self.default.chat_id == chat_id:
            return self.default
        if 0 < index <= len(self.routes) and self.routes[index - 1].chat_id == chat_id:
            return self.routes[index - 1]
        return next((r for r in self.routes if r.chat_id == chat_id), self.default)

    def on_call_at(self, index: int, chat_id: int) -> OnCall:
        return self.route_at(index, chat_id).on_call

    def chats(self) -> frozenset[int]:
        """Every chat a route or the default names: the bot serves exactly these."""
        return frozenset(route.chat_id for route in [*self.routes, self.default])

    def remap_chat(self, old: int, new: int) -> int:
        """A group became a supergroup (migrate_to_chat_id): point its routes at the new id.

        Only in memory; returns how many routes changed (the default included), so the caller
        can log that ROUTES_PATH / TELEGRAM_CHAT_ID still name the old id.
        """
        changed = 0
        for i, route in enumerate(self.routes):
            if route.chat_id == old:
                self.routes[i] = dataclasses.replace(route, chat_id=new)
                changed += 1
        if self.default.chat_id == old:
            self.default = dataclasses.replace(self.default, chat_id=new)
            changed += 1
        return changed


def on_call_problems(routes: RouteTable) -> list[tuple[str, str]]:
    """Reminder settings that cannot do what they say: (problem, fix), one per route."""
    problems = []
    for route in [*routes.routes, routes.default]:
        where = _where("", route.index, route.name) if route.index else "the default route"
        if route.escalate_to and route.pace.max == 0:
            problems.append((f"{where}: escalate_to is set but remind_max is 0, so nobody is "
                             "ever reminded and the escalation never comes",
                             "set remind_max above 0, or drop escalate_to"))
        if route.pace.max and not route.on_call.reminded:
            problems.append((f"{where}: reminders mention nobody (no oncall and no approvers)",
                             "set APPROVER_IDS or the route's oncall, or REMIND_MAX=0 "
                             "(remind_max = 0 on a route) to send no reminders"))
    return problems


def default_route(chat_id: int, approvers: Iterable[int], pace: Pace | None = None) -> Route:
    return Route(chat_id=chat_id, approvers=frozenset(approvers), name="default", is_default=True,
                 pace=pace or Pace())


def load_routes(path: str | None, default_chat_id: int, default_approvers: list[int],
                pace: Pace | None = None) -> RouteTable:
    """Read ROUTES_PATH; without a path, every incident goes to the default chat.
    `pace` (REMIND_AFTER, REMIND_EVERY, REMIND_MAX) applies where a route sets none."""
    default = default_route(default_chat_id, default_approvers, pace)
    if not path:
        return RouteTable([], default)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoutesFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutesFileError(f"{path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RoutesFileError(f"{path}: not valid TOML: {exc}") from None
    return parse_routes(data, default, source=path)


def parse_routes(data: Mapping[str, Any], default: Route, source: str = "routes") -> RouteTable:
    unknown = sorted(set(data) - {"route"})
    if unknown:
        raise RoutesFileError(
            f"{source}: unknown top-level key {unknown[0]!r} (routes are [[route]] tables)"
        )
    tables = data.get("route", [])
    if not isinstance(tables, list):
        raise RoutesFileError(f"{source}: 'route' must be an array of tables: write [[route]]")
    routes = [_route(source, i, table, default) for i, table in enumerate(tables, 1)]
    for route, later in itertools.pairwise(routes):
        if route.catch_all and not route.continue_:
            # Certainly a mistake: every route after it is dead.
            raise RoutesFileError(
                f"{_where(source, route.index, route.name)}: match: matches everything and has "
                f"no continue = true, so {_where('', later.index, later.name)} is never reached "
                "(move the catch-all last)"
            )
    return RouteTable(routes, default)


def _where(source: str, index: int, name: str = "") -> str:
    label = f"route {index}" + (f" ({name})" if name else "")
    return f"{source}: {label}" if source else label


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML true is an int too


def _route(source: str, index: int, table: Any, default: Route) -> Route:
    if not isinstance(table, dict):
        raise RoutesFileError(f"{_where(source, index)}: must be a table")
    name = table.get("name", "")
    where = _where(source, index, name if isinstance(name, str) else "")

    def bad(field_name: str, problem: str) -> RoutesFileError:
        return RoutesFileError(f"{where}: {field_name}: {problem}")

    for key in table:
        if key not in _FIELDS:
            raise bad(key, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    if not isinstance(name, str):
        raise bad("name", "must be a string")

    if "chat_id" not in table:
        raise bad("chat_id", "is required (the chat's id, e.g. -1001234567890)")
    chat_id = table["chat_id"]
    if not _is_int(chat_id) or chat_id == 0:
        raise bad("chat_id", f"must be a non-zero integer, got {chat_id!r}")

    topic = table.get("topic")
    if topic is not None and (not _is_int(topic) or topic <= 0):
        raise bad("topic", f"must be a positive integer (a message_thread_id), got {topic!r}")

    approvers = default.approvers
    if "approvers" in table:
        raw = table["approvers"]
        if not isinstance(raw, list) or not all(_is_int(a) and a > 0 for a in raw):
            raise bad("approvers", f"must be a list of Telegram user ids, got {raw!r}")
        approvers = frozenset(raw)

    cont = table.get("continue", False)
    if not isinstance(cont, bool):
        raise bad("continue", f"must be true or false, got {cont!r}")

    match = _labels(table.get("match", {}), "match", bad)
    regexes = _labels(table.get("match_regex", {}), "match_regex", bad)
    compiled = []
    for label, pattern in regexes:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # "[[" etc. compile with a FutureWarning
                compiled.append((label, re.compile(pattern)))
        except (re.error, FutureWarning) as exc:
            problem = f"bad regular expression {pattern!r}: {exc}"
            raise bad(f"match_regex.{label}", problem) from None

    return Route(
        chat_id=chat_id, approvers=approvers, topic=topic, match=match,
        match_regex=tuple(compiled), continue_=cont, name=name, index=index,
        oncall=_people(table, "oncall", bad), escalate_to=_people(table, "escalate_to", bad),
        pace=_pace(table, default.pace, bad),
    )


def _people(table: dict[str, Any], field_name: str, bad: Any) -> tuple[Person, ...]:
    raw = table.get(field_name, [])
    if not isinstance(raw, list):
        raise bad(field_name, f'must be a list of usernames or user ids, got {raw!r}')
    people: list[Person] = []
    for item in raw:
        if _is_int(item) and item > 0:
            people.append(item)
        elif isinstance(item, str) and (m := _USERNAME.fullmatch(item.strip())):
            people.append(m.group(1))
        else:
            raise bad(field_name, f'{item!r} is neither a username ("@name") nor a user id')
    return tuple(dict.fromkeys(people))


def _pace(table: dict[str, Any], default: Pace, bad: Any) -> Pace:
    durations = {}
    for key in ("remind_after", "remind_every"):
        if key not in table:
            continue
        try:
            value = parse_duration(table[key])
        except ValueError as exc:
            raise bad(key, str(exc)) from None
        if value <= timedelta(0):
            raise bad(key, f"must be longer than zero, got {table[key]!r}")
        durations[key] = value
    most = table.get("remind_max", default.max)
    if not _is_int(most) or not 0 <= most <= 100:
        raise bad("remind_max", f"must be a whole number from 0 to 100, got {most!r}")
    return Pace(after=durations.get("remind_after", default.after),
                every=durations.get("remind_every", default.every), max=most)


def _labels(raw: Any, field_name: str, bad: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        raise bad(field_name, 'must be a table like { namespace = "prod" }')
    for label, value in raw.items():
        if not LABEL_NAME.fullmatch(label):
            raise bad(f"{field_name}.{label}", "is not a label name")
        if not isinstance(value, str):
            raise bad(f"{field_name}.{label}", f"must be a string (quote it), got {value!r}")
    return tuple(sorted(raw.items()))
