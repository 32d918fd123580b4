"""The settings and the files they name, checked before anything opens: `run` gets them
from `startup_checks` (App.start repeats them), `check-config` gets every check, Redis
and Telegram included, from `all_checks`. Each check says what it found and what to do.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Set
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from bot.alerts.routing import RoutesFileError, RouteTable, load_routes, on_call_problems
from bot.checks import Check, fail, ok, warn
from bot.config import Settings
from bot.decisions.consensus import ConsensusFileError, load_engines
from bot.decisions.redact import RedactFileError, load_patterns
from bot.decisions.rules import RuleFileError, load_rules
from bot.models import Pace
from bot.resource_checks import database_check, port_check, redis_check, redis_url_check

# What @BotFather hands out: the bot's numeric id, a colon, then the secret part.
TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")

Loaded = TypeVar("Loaded")


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
    )


def settings_checks(s: Settings) -> list[Check]:
    problems = s.problems_for_run()
    if not problems:
        return [ok("settings", "every variable parses; nothing required is missing")]
    return [fail("settings", p, "set it in the environment or .env") for p in problems]


def token_check(s: Settings) -> Check:
    token = s.telegram_bot_token.get_secret_value()
    if not token:
        return fail("TELEGRAM_BOT_TOKEN", "not set", "get a token from @BotFather")
    if not TOKEN_SHAPE.fullmatch(token):
        return fail(
            "TELEGRAM_BOT_TOKEN", "does not look like a bot token",
            "paste it exactly as @BotFather gave it: digits, a colon, then letters, digits, "
            "_ and - (no 'bot' prefix, quotes or spaces)",
        )
    return ok("TELEGRAM_BOT_TOKEN", f"shape ok (bot id {token.split(':', 1)[0]})")


def file_check(name: str, load: Callable[[], Loaded], error: type[Exception], fix: str,
               found: Callable[[Loaded], str],
               problem: Callable[[Exception], str] = str) -> Check:
    """A file a setting names: ok with what `found` says of its contents, or the
    `problem` of the `error` that loading it raised, with its fix."""
    try:
        loaded = load()
    except error as exc:
        return fail(name, problem(exc), fix)
    return ok(name, found(loaded))


def rules_check(s: Settings) -> Check:
    if not s.rules_path:
        return ok("RULES_PATH", "built-in rules")
    path = s.rules_path

    def problem(exc: Exception) -> str:
        cause = exc.__cause__
        return (f"{path}: {_validation_text(cause)}"
                if isinstance(cause, ValidationError) else str(exc))

    return file_check("RULES_PATH", lambda: load_rules(path), RuleFileError,
                      "fix the file (TOML [[rule]] tables, see README) or leave RULES_PATH "
                      "empty for the built-in rules",
                      lambda rules: f"{path}: {len(rules)} rule(s)", problem)


def proposal_checks(s: Settings) -> list[Check]:
    """The files the proposers read: redaction patterns, consensus engines, runbooks."""
    checks = [file_check("LLM_REDACT_PATH", lambda: load_patterns(s.llm_redact_path or None),
                         RedactFileError,
                         "one regular expression a line (# for comments), or leave it empty "
                         "for the built-in patterns",
                         lambda patterns: f"built-in patterns + {len(patterns)} of yours")]
    if s.consensus_path:
        path = s.consensus_path
        checks.append(file_check("CONSENSUS_PATH", lambda: load_engines(path),
                                 ConsensusFileError,
                                 "fix the file ([[engine]] tables: name, base_url, model, "
                                 "api_key_env; see README) or leave CONSENSUS_PATH empty",
                                 lambda engines: f"{len(engines)} engine(s)"))
    if s.kb_path and not Path(s.kb_path).is_dir():
        checks.append(warn("KB_PATH", f"{s.kb_path} is not a folder; no runbooks are indexed",
                           "point it at a folder of Markdown files, or leave it empty"))
    return checks


def routes_check(s: Settings) -> tuple[Check, RouteTable | None]:
    try:
        routes = load_routes(s.routes_path or None, s.telegram_chat_id, s.approver_ids,
                             Pace(s.remind_after, s.remind_every, s.remind_max))
    except RoutesFileError as exc:
        return fail("ROUTES_PATH", str(exc),
                    "fix the file (TOML [[route]] tables, see README) or leave ROUTES_PATH "
                    "empty to send everything to TELEGRAM_CHAT_ID"), None
    if not s.routes_path:
        return ok("ROUTES_PATH", "everything goes to TELEGRAM_CHAT_ID"), routes
    return ok("ROUTES_PATH", f"{s.routes_path}: {len(routes.routes)} route(s), "
                             f"{len(routes.chats())} chat(s)"), routes


def critical_namespace_gaps(
    routes: RouteTable, critical_namespaces: Set[str], critical_approvals: int
) -> list[str]:
    """One line per route that can bring a critical namespace's incidents to a chat with
    fewer approvers than a critical proposal needs: such a proposal could never be approved."""
    problems = []
    caught: set[str] = set()  # namespaces an earlier route takes entirely (no continue)
    for route in [*routes.routes, routes.default]:
        exact = dict(route.match).get("namespace")
        pattern = dict(route.match_regex).get("namespace")
        reached = sorted(
            ns for ns in critical_namespaces - caught
            if exact in (None, ns) and (pattern is None or pattern.fullmatch(ns))
        )
        only_namespace = {k for k, _ in route.match} | {k for k, _ in route.match_regex} \
            <= {"namespace"}
        if only_namespace and not route.continue_:
            caught.update(reached)
        approvers = len(routes.approvers_for(route.chat_id))
        if reached and approvers < critical_approvals:
            where = f"route {route.index}" if route.index else "the default route"
            if route.name and route.index:
                where += f" ({route.name})"
            problems.append(
                f"{where} (chat {route.chat_id}) can receive incidents in critical namespace "
                f"{', '.join(reached)} but has {approvers} approver(s): their proposals need "
                f"{critical_approvals} different approvers and could never be approved there"
            )
    return problems


def critical_namespace_checks(s: Settings, routes: RouteTable | None) -> list[Check]:
    if routes is None or not s.critical_namespaces or s.approvers_from_chat_admins:
        return []
    gaps = critical_namespace_gaps(routes, frozenset(s.critical_namespaces),
                                   s.critical_approvals)
    fix = ("add approvers to that chat (APPROVER_IDS or the route's approvers), or take the "
           "namespace out of CRITICAL_NAMESPACES, or lower CRITICAL_APPROVALS")
    return [warn("CRITICAL_NAMESPACES", gap, fix) for gap in gaps]


def _database_check(s: Settings) -> Check:
    if s.database_url.get_secret_value():
        # Reaching it is a network call: `run` opens it (and says why when it cannot).
        return ok("DATABASE_URL", f"PostgreSQL at {s.database_shown}")
    return database_check(s.database_path)


def startup_checks(s: Settings) -> tuple[list[Check], RouteTable | None]:
    """What App.start checks before it opens anything: no network, no Redis."""
    routes_result, routes = routes_check(s)
    reminders = [warn("REMIND_MAX", problem, fix)
                 for problem, fix in (on_call_problems(routes) if routes else [])]
    checks = [
        token_check(s), rules_check(s), *proposal_checks(s), routes_result,
        *critical_namespace_checks(s, routes), *reminders,
        _database_check(s), port_check(s.http_host, s.http_port),
        redis_url_check(s.redis_url),
    ]
    return checks, routes


# --- check-config ------------------------------------------------------------------------------

async def all_checks(s: Settings, *, offline: bool) -> list[Check]:
    """Every check, `check-config`'s list: the offline ones, Redis answering, then
    Telegram (unless offline, or the token or routes already failed)."""
    checks, routes = startup_checks(s)
    checks = [*settings_checks(s), *[c for c in checks if c.name != "REDIS_URL"],
              await redis_check(s.redis_url)]
    if offline:
        return checks
    if not all(c.ok for c in checks if c.name in ("TELEGRAM_BOT_TOKEN", "ROUTES_PATH")) \
            or routes is None:
        checks.append(fail("Telegram", "skipped: fix the token and routes first",
                           "then run check-config again"))
        return checks
    # Imported here, not above: the Bot API client brings aiogram (seconds of CPU to
    # import), and `run` reports the offline checks before that.
    from bot.telegram.checks import telegram_checks
    from bot.telegram.client import build_bot

    bot = build_bot(s)
    try:
        online, _ = await asyncio.wait_for(telegram_checks(s, bot, routes), 60)
    except TimeoutError:
        online = [fail("Telegram", f"no answer from {s.telegram_api_base} within 60 s",
                       "check the network, a proxy, or TELEGRAM_API_BASE")]
    finally:
        await bot.session.close()
    return checks + online
