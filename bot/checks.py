"""Start-up checks, shared by `run` (which refuses to start on a failure) and `check-config`
(which prints them all as a table). Each check says what it found and what to do about it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import sqlite3
from collections.abc import Iterable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.alerts.routing import RoutesFileError, RouteTable, load_routes, on_call_problems
from bot.config import Settings
from bot.decisions.consensus import ConsensusFileError, load_engines
from bot.decisions.redact import RedactFileError, load_patterns
from bot.decisions.rules import RuleFileError, load_rules
from bot.models import Pace
from storage.db import SchemaTooNew, known_schema_version

if TYPE_CHECKING:
    from aiogram import Bot

log = logging.getLogger(__name__)

# What @BotFather hands out: the bot's numeric id, a colon, then the secret part.
TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{1,200}")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False  # shown, logged by `run`, but not a failure
    # A failure `run` works around (logged as a warning); check-config still fails on it.
    run_continues: bool = False

    @property
    def result(self) -> str:
        return "ok" if self.ok and not self.warning else ("warn" if self.ok else "FAIL")

    def line(self) -> str:
        return f"{self.name}: {self.detail}" + (f" — {self.fix}" if self.fix else "")


def ok(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def fail(name: str, detail: str, fix: str, *, run_continues: bool = False) -> Check:
    return Check(name, False, one_line(detail), fix, run_continues=run_continues)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, True, one_line(detail), fix, warning=True)


class StartupError(Exception):
    """A problem that stops start-up, said in one line: what is wrong and what to do."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.line())
        self.check = check


def require(checks: Iterable[Check]) -> None:
    """Raise for the first failure `run` cannot work around; log the rest."""
    for check in checks:
        if not check.ok and not check.run_continues:
            raise StartupError(check)
    for check in checks:
        if check.warning or not check.ok:
            log.warning("%s", check.line())


def one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
    )


# --- offline checks ---------------------------------------------------------------------------

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


def rules_check(s: Settings) -> Check:
    if not s.rules_path:
        return ok("RULES_PATH", "built-in rules")
    try:
        rules = load_rules(s.rules_path)
    except RuleFileError as exc:
        cause = exc.__cause__
        detail = (f"{s.rules_path}: {_validation_text(cause)}"
                  if isinstance(cause, ValidationError) else str(exc))
        return fail("RULES_PATH", detail,
                    "fix the file (TOML [[rule]] tables, see README) or leave RULES_PATH empty "
                    "for the built-in rules")
    return ok("RULES_PATH", f"{s.rules_path}: {len(rules)} rule(s)")


def proposal_checks(s: Settings) -> list[Check]:
    """The files the proposers read: redaction patterns, consensus engines, runbooks."""
    checks: list[Check] = []
    try:
        patterns = load_patterns(s.llm_redact_path or None)
    except RedactFileError as exc:
        checks.append(fail("LLM_REDACT_PATH", str(exc),
                           "one regular expression a line (# for comments), or leave it empty "
                           "for the built-in patterns"))
    else:
        checks.append(ok("LLM_REDACT_PATH", f"built-in patterns + {len(patterns)} of yours"))
    if s.consensus_path:
        try:
            engines = load_engines(s.consensus_path)
        except ConsensusFileError as exc:
            checks.append(fail("CONSENSUS_PATH", str(exc),
                               "fix the file ([[engine]] tables: name, base_url, model, "
                               "api_key_env; see README) or leave CONSENSUS_PATH empty"))
        else:
            checks.append(ok("CONSENSUS_PATH", f"{len(engines)} engine(s)"))
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


def _blocking_ancestor(path: Path) -> Path | None:
    """The first ancestor of `path` that exists and is not a directory, if any."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def database_check(path_text: str, name: str = "DATABASE_PATH", fix_path: str = "") -> Check:
    """The database opens, can be written and has a schema this version knows. Nothing is
    created or migrated here; `run` migrates at start-up."""
    fix_path = fix_path or f"point {name} at a file in a directory this user can write"
    if path_text == ":memory:":
        return ok(name, "in memory (nothing survives a restart)")
    path = Path(path_text)
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        return fail(name, f"{path}: {blocker} is a file, not a directory", fix_path)
    if path.is_dir():
        return fail(name, f"{path} is a directory", "name the database file, e.g. data/opsgate.db")
    if not path.exists():
        existing = next(p for p in path.parents if p.exists())
        probe = existing / f".opsgate-write-test-{path.name}"
        try:
            probe.touch()
            probe.unlink()
        except OSError as exc:
            return fail(name, f"cannot create {path}: {exc.strerror or exc}", fix_path)
        return ok(name, f"{path} will be created (schema {known_schema_version()})")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
    except sqlite3.Error as exc:
        return fail(name, f"cannot open {path}: {exc}", fix_path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.DatabaseError as exc:
        return fail(name, f"cannot write {path}: {exc}",
                    "check the file is an opsgate database, not locked by another program, "
                    "and on a writable disk")
    finally:
        conn.close()
    known = known_schema_version()
    if version > known:
        return fail(name, str(SchemaTooNew(path, version, known)), SchemaTooNew.FIX)
    pending = f", {known - version} migration(s) run at start-up" if version < known else ""
    return ok(name, f"{path}: schema {version}{pending}")


def port_check(host: str, port: int, name: str = "HTTP_PORT") -> Check:
    if port == 0:
        return ok(name, f"{host}: any free port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return fail("HTTP_HOST", f"{host!r}: {exc.strerror}", "use an address, e.g. 127.0.0.1")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return fail(name, bind_problem(host, port, exc), bind_fix(name))
    return ok(name, f"{host}:{port} is free")


def bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"{host}:{port} is already in use"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def bind_fix(name: str) -> str:
    return f"stop what listens there or choose another port ({name}; the sandbox: --port N)"


def redis_url_check(url: str) -> Check:
    from redis.asyncio import Redis

    if not url:
        return ok("REDIS_URL", "not set: short-lived state stays in this process")
    try:
        Redis.from_url(url)
    except ValueError as exc:
        return fail("REDIS_URL", f"{url!r}: {exc}", "write it like redis://127.0.0.1:6379/0")
    return ok("REDIS_URL", f"{url} parses")


async def redis_check(url: str) -> Check:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    parsed = redis_url_check(url)
    if not url or not parsed.ok:
        return parsed
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()  # type: ignore[misc]
    except (RedisError, OSError) as exc:
        return fail("REDIS_URL", f"nobody answers at {url}: {exc}",
                    "start Redis or clear REDIS_URL (`run` starts on in-process state "
                    "and switches to Redis when it answers)", run_continues=True)
    finally:
        await client.aclose()
    return ok("REDIS_URL", f"{url} answers")


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


def startup_checks(s: Settings) -> tuple[list[Check], RouteTable | None]:
    """What App.start checks before it opens anything: no network, no Redis."""
    routes_result, routes = routes_check(s)
    reminders = [warn("REMIND_MAX", problem, fix)
                 for problem, fix in (on_call_problems(routes) if routes else [])]
    checks = [
        token_check(s), rules_check(s), *proposal_checks(s), routes_result,
        *critical_namespace_checks(s, routes), *reminders,
        database_check(s.database_path), port_check(s.http_host, s.http_port),
        redis_url_check(s.redis_url),
    ]
    return checks, routes


# --- Telegram ----------------------------------------------------------------------------------

@dataclass
class TelegramFacts:
    """What the Telegram checks learnt, for the wiring that follows them."""

    username: str = ""
    bot_id: int = 0
    topic_chats: frozenset[int] = field(default_factory=frozenset)


async def telegram_checks(s: Settings, bot: Bot, routes: RouteTable
                          ) -> tuple[list[Check], TelegramFacts]:
    """getMe, then getChat and the bot's membership and rights in every routed chat."""
    from aiogram.enums import ChatMemberStatus
    from aiogram.exceptions import TelegramAPIError, TelegramNetworkError

    facts = TelegramFacts()
    try:
        me = await bot.get_me()
    except TelegramNetworkError as exc:
        return [fail("getMe", f"cannot reach the Bot API at {s.telegram_api_base}: {exc}",
                     "check the network, a proxy, or TELEGRAM_API_BASE")], facts
    except TelegramAPIError as exc:
        return [fail("getMe", f"Telegram refused TELEGRAM_BOT_TOKEN: {exc.message}",
                     "get the current token from @BotFather (/token)")], facts
    facts.username, facts.bot_id = me.username or "", me.id
    checks = [ok("getMe", f"@{me.username} (id {me.id})")]
    topics = set()
    member_states = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.CREATOR,
                     ChatMemberStatus.MEMBER)
    for chat_id in sorted(routes.chats()):
        name = f"chat {chat_id}"
        try:
            chat = await bot.get_chat(chat_id)
            member = await bot.get_chat_member(chat_id, me.id)
        except TelegramAPIError as exc:
            checks.append(fail(name, f"the bot cannot reach it: {exc.message}",
                               "check TELEGRAM_CHAT_ID / ROUTES_PATH; add the bot to the chat, "
                               "then send /whoami there to see its id"))
            continue
        if member.status not in member_states:
            checks.append(fail(name, f"the bot is not a member (status: {member.status})",
                               "add the bot to the chat"))
            continue
        title = chat.title or chat.full_name or ""
        checks.append(ok(name, f"{title!r}: bot is {member.status}"))
        approvers = routes.approvers_for(chat_id)
        if len(approvers) < s.critical_approvals and not s.approvers_from_chat_admins:
            checks.append(warn(
                f"{name} approvers",
                f"{len(approvers)} approver(s); critical-risk proposals need "
                f"{s.critical_approvals} different people and could never be approved there",
                "add approvers (APPROVER_IDS or the route's approvers) or lower "
                "CRITICAL_APPROVALS",
            ))
        if s.thread_mode != "topic":
            continue
        if not chat.is_forum:
            checks.append(fail(f"{name} topics", "THREAD_MODE=topic but the chat has no topics "
                               "(run falls back to reply threads there)",
                               "turn on Topics in the group's settings, or THREAD_MODE=reply",
                               run_continues=True))
        elif not getattr(member, "can_manage_topics", False):
            checks.append(fail(f"{name} topics", "THREAD_MODE=topic but the bot lacks the "
                               "Manage topics right, can_manage_topics (run falls back to reply "
                               "threads there)",
                               "make the bot an admin with 'Manage topics', or "
                               "THREAD_MODE=reply", run_continues=True))
        else:
            checks.append(ok(f"{name} topics", "forum; the bot may manage topics"))
            topics.add(chat_id)
    facts.topic_chats = frozenset(topics)
    return checks, facts


# --- check-config ------------------------------------------------------------------------------

async def all_checks(s: Settings, *, offline: bool) -> list[Check]:
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


def table(checks: list[Check]) -> str:
    rows = [("check", "result", "detail / what to do")]
    for c in checks:
        show_fix = c.fix and (not c.ok or c.warning)
        rows.append((c.name, c.result, c.detail + (f" — {c.fix}" if show_fix else "")))
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows)
