"""Wiring: Bot, Dispatcher, web server and workers in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg
from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError
from aiohttp import web

from bot import texts
from bot.alerts.ingest import IngestContext
from bot.alerts.routing import RouteTable
from bot.alerts.signature import GrafanaSigning
from bot.cards.notes import Voice
from bot.chat.answers import Console
from bot.chat.authorization import IncidentAccess
from bot.chat.card_buttons import Inquiries
from bot.chat.commands import command_menu
from bot.checks import StartupError, fail, require
from bot.config import Settings
from bot.config_checks import startup_checks
from bot.decisions.factory import build_decision_stack
from bot.health import Readiness
from bot.incidents.acks import AckService
from bot.incidents.approvals import ApprovalConfig, ApprovalService, Authorizer
from bot.incidents.reminders import Reminders
from bot.incidents.stale_press import StalePressRule, away_since
from bot.leadership import Leadership
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.resource_checks import bind_fix, bind_problem
from bot.retention import Pruner, Retention
from bot.silences.alertmanager import AlertmanagerSilences
from bot.silences.service import SilenceService, announce_ended_silences
from bot.telegram.card_loading import card_renderer, digest_renderer
from bot.telegram.chat_migration import ChatMigrator
from bot.telegram.checks import telegram_checks
from bot.telegram.client import build_bot
from bot.telegram.delivery import DeliveryWorker, people_are_waiting
from bot.telegram.inbox import Inbox, InboxWorker, Poller
from bot.telegram.observed import ObservedSession, TelegramReach, time_press
from bot.telegram.pacing import Limits, Pacer
from bot.telegram.storm import storm_mode
from bot.telegram.topics import TopicManager
from handlers import alerts as alert_routes
from handlers import telegram_webhook
from handlers.routers import make_routers
from storage import outbox, repo, sqlite_lock
from storage.backends import database_for
from storage.db import Database, SchemaTooNew
from storage.state import StateStore, build_state

log = logging.getLogger(__name__)


ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"
MEMBER_STATUSES = frozenset({"creator", "administrator", "member"})  # "restricted": is_member


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_dispatcher(
    *, approvals: ApprovalService, authz: Authorizer, access: IncidentAccess,
    inquiries: Inquiries, console: Console,
    migrator: ChatMigrator, routes: RouteTable, stale_press: StalePressRule, tz: ZoneInfo,
    locale: str, acks: AckService,
) -> Dispatcher:
    """Every service reaches the handlers as its own keyword argument (aiogram passes each
    handler the ones it names). No FSM: no conversation here has steps to remember."""
    dp = Dispatcher(
        disable_fsm=True,
        approvals=approvals, authz=authz, access=access, inquiries=inquiries, console=console,
        migrator=migrator, routes=routes, stale_press=stale_press, tz=tz, locale=locale,
        acks=acks,
    )
    dp.callback_query.outer_middleware(time_press)
    dp.update.outer_middleware(people_are_waiting)
    dp.include_routers(*make_routers())
    return dp


@dataclass
class App:
    settings: Settings
    clock: Callable[[], datetime] = utcnow
    bot: Bot | None = None
    dp: Dispatcher | None = None
    # The parts start() built, kept to stop them (and for tests to look inside).
    db: Database | None = None
    state: StateStore | None = None
    approvals: ApprovalService | None = None
    pipeline: Pipeline | None = None
    delivery: DeliveryWorker | None = None
    runner: web.AppRunner | None = None
    metrics: Metrics | None = None
    reach: TelegramReach | None = None
    port: int = 0
    inbox: Inbox | None = None
    inbox_worker: InboxWorker | None = None
    poller: Poller | None = None
    leadership: Leadership | None = None
    reminders: Reminders | None = None
    access: IncidentAccess | None = None
    _polling: asyncio.Task[None] | None = None
    _roles: asyncio.Task[None] | None = None
    _term: int | None = None  # the lease token the leader's stages run under
    _poll: bool = True
    _bot_id: int = 0
    _db_lock: sqlite_lock.SqliteLock | None = None

    async def start(self, *, poll: bool = True) -> None:
        s = self.settings
        clock = self.clock
        checks, routes = startup_checks(s)
        require(checks)
        assert routes is not None
        self.db = db = await self._open_database(s)
        leadership = Leadership(db, lease_for=s.leader_lease.total_seconds(),
                                renew_every=s.leader_renew_every.total_seconds(),
                                local=db.dialect == "sqlite")
        self.leadership = leadership
        state = build_state(s.redis_url)
        self.state = state
        await state.open()
        metrics, reach = Metrics(), TelegramReach()
        self.metrics, self.reach = metrics, reach
        # Every Telegram call passes the lease's local deadline first.
        bot = build_bot(s, ObservedSession(metrics, reach), gate=leadership.gate)
        self.bot = bot

        async def admin_ids(chat_id: int) -> list[int]:
            admins = await bot.get_chat_administrators(chat_id)
            return [m.user.id for m in admins]

        async def is_member(chat_id: int, user_id: int) -> bool:
            member = await bot.get_chat_member(chat_id, user_id)
            return member.status in MEMBER_STATUSES or bool(getattr(member, "is_member", False))

        migrator = ChatMigrator(db, clock, routes, s.locale, s.timezone)
        await migrator.load()
        silences = SilenceService(
            db, clock, s.locale, s.timezone,
            AlertmanagerSilences(s.alertmanager_url) if s.alertmanager_url else None,
        )
        authz = Authorizer(
            routes.approvers_for, state, from_admins=s.approvers_from_chat_admins,
            admin_lookup=admin_ids, admin_ttl=s.admin_cache_ttl.total_seconds(),
        )
        access = IncidentAccess(db, routes, authz, clock)
        approvals = ApprovalService(
            db, state,
            ApprovalConfig(locale=s.locale, tz_name=s.timezone,
                           reject_reason_window=s.reject_reason_window),
            clock,
            silences,
        )
        stack = build_decision_stack(s, db)
        try:
            telegram, facts = await telegram_checks(s, bot, routes)
        except TelegramAPIError as exc:
            raise StartupError(fail("Telegram", f"unexpected answer: {exc}",
                                    "run `python -m bot check-config`")) from exc
        require(telegram)
        self._bot_id = facts.bot_id
        topic_chats = facts.topic_chats
        delivery = DeliveryWorker(
            db, bot, card_renderer(db, s.tz, s.locale),
            max_attempts=s.delivery_max_attempts,
            topics=TopicManager(db, bot, topic_chats, s.locale) if topic_chats else None,
            on_migrate=migrator.migrate,
            pacer=Pacer(Limits.from_settings(s)) if s.telegram_pacing else None,
            metrics=metrics,
            storm=storm_mode(db, s, clock),
            render_digest=digest_renderer(db, s.tz, s.locale),
            fence=leadership.holds,
        )
        pipeline = Pipeline.connect(
            db, clock, Voice(s.locale, s.timezone),
            engine=stack.engine, executor=stack.executor, delivery=delivery,
            approval_timeout=s.approval_timeout, critical_approvals=s.critical_approvals,
            playbooks=stack.playbooks,
            auto_approver=stack.auto_approver if s.auto_approve else None,
            metrics=metrics, analysis_concurrency=s.analysis_concurrency,
            fence=leadership.holds,
        )
        self.approvals, self.pipeline, self.delivery = approvals, pipeline, delivery
        inquiries = Inquiries(db, s.tz, s.locale, clock, stack.playbooks)
        voice = Voice(s.locale, s.timezone)
        acks = AckService(db, clock, voice, access.may_act, routes.on_call_at, state,
                          ack_by=s.ack_by, is_member=is_member,
                          member_ttl=s.admin_cache_ttl.total_seconds())
        reminders = Reminders(db, routes.on_call_at, clock, voice,
                              batch_over=s.remind_batch_over)
        self.reminders, self.access = reminders, access
        pipeline.timers.sweeps.append(reminders.sweep)
        pipeline.timers.sweeps.append(
            lambda: announce_ended_silences(silences, inquiries.say, s.tz, s.locale))
        pipeline.timers.sweeps.append(Pruner(db, Retention(
            resolved_incidents=s.retain_resolved_incidents, audit=s.retain_audit,
            delivered_outbox=s.retain_delivered_outbox, every=s.prune_interval), clock).sweep)

        self.dp = build_dispatcher(
            approvals=approvals, authz=authz, inquiries=inquiries,
            access=access, console=Console(db, access, silences, s.tz, s.locale, clock),
            migrator=migrator, routes=routes,
            stale_press=StalePressRule(s.callback_max_age),
            tz=s.tz, locale=s.locale, acks=acks,
        )
        ingest_ctx = IngestContext(
            routes=routes, group_by=tuple(s.group_by_labels),
            locale=s.locale, tz_name=s.timezone, topic_chats=topic_chats,
            first_card_wait=s.first_card_wait,
        )
        readiness = Readiness(db, clock, reach, state, s.telegram_unreachable_after,
                              s.outbox_stuck_after, role=lambda: leadership.role.value)
        self.inbox = Inbox(db, clock)
        self.poller = Poller(bot, self.inbox, ALLOWED_UPDATES, lease_left=leadership.remaining)
        self.inbox_worker = InboxWorker(db, self.dp, bot, clock, fence=leadership.holds)
        self.inbox.stored = self.inbox_worker.offer
        await self._start_web(ingest_ctx, db, metrics, readiness)
        await self._register_commands(db)
        self._poll = poll
        # The first look at the lease decides the role this process starts in (on SQLite:
        # leader); from then on the lease's loop renews or retries and the role follows.
        await leadership.step()
        await self._follow_role()
        leadership.start()
        self._roles = asyncio.create_task(self._follow_roles(leadership), name="roles")
        log.info("opsgate is up (%s): alerts on http://%s:%s/alerts/alertmanager, chat %s",
                 leadership.role, s.http_host, self.port, s.telegram_chat_id)

    async def _follow_roles(self, leadership: Leadership) -> None:
        while True:
            await leadership.changed.wait()
            leadership.changed.clear()
            try:
                await self._follow_role()
            except Exception:
                log.exception("changing role failed; continuing")

    async def _follow_role(self) -> None:
        """Start the leader's work on becoming leader, stop it on stepping down (and both on
        a new term: the recovery that comes with leading runs again)."""
        assert self.leadership is not None
        token = self.leadership.token
        if self._term is not None and self._term != token:
            await self._stand_by()
        if token is not None and self._term is None:
            try:
                await self._lead(token)
            except Exception as exc:
                log.exception("could not start leading")
                await self._stand_by()
                self.leadership.step_down(f"could not start leading: {type(exc).__name__}")

    async def _lead(self, token: int) -> None:
        """Recovery, then every stage, then Telegram's updates: what the leader alone runs."""
        assert self.db is not None and self.pipeline is not None and self.bot is not None
        assert self.reminders is not None and self.access is not None
        assert self.poller is not None and self.inbox_worker is not None
        s, clock, bot = self.settings, self.clock, self.bot
        self._term = token
        await self.reminders.schedule_missing(self.access.route_index_into)
        async with self.db.read() as conn:
            beat = await repo.get_meta(conn, "heartbeat")  # the last leader's
        await self.pipeline.start()
        if not self._poll:
            return
        # What Telegram kept while nobody led may be as old as the time since then.
        await bot.delete_webhook(drop_pending_updates=False)
        self.poller.offset = None
        await self.poller.drain(queued_since=away_since(beat, clock()))
        self.inbox_worker.start()
        if s.telegram_webhook_url:
            await bot.set_webhook(
                s.telegram_webhook_url, allowed_updates=ALLOWED_UPDATES,
                secret_token=s.telegram_webhook_secret.get_secret_value(),
            )
        else:
            self._polling = asyncio.create_task(self._poll_updates(self.poller), name="polling")

    async def _stand_by(self) -> None:
        """Stop the leader's work: polling, the handlers, every stage (each lets what is under
        way finish within its bounded wait; fenced writes refuse what comes too late)."""
        self._term = None
        await _cancel(self._polling)
        self._polling = None
        if self.inbox_worker is not None:
            await self.inbox_worker.stop()
        if self.pipeline is not None:
            await self.pipeline.stop()

    async def _open_database(self, s: Settings) -> Database:
        busy_ms = int(s.database_busy_timeout.total_seconds() * 1000)
        if s.database_url.get_secret_value():
            if "database_path" in s.model_fields_set:
                log.info("DATABASE_URL is set: the database is %s; DATABASE_PATH (%s) is not "
                         "used", s.database_shown, s.database_path)
            db = database_for(s.database, busy_ms)
            try:
                await db.open()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    SchemaTooNew) as exc:
                await db.close()
                raise StartupError(fail(
                    "DATABASE_URL", f"cannot open {s.database_shown}: {exc}",
                    "check the URL and that PostgreSQL answers there")) from exc
            return db
        self._lock_database(s.database_path)
        db = database_for(s.database_path, busy_ms)
        try:
            await db.open()
        except (OSError, sqlite3.Error, SchemaTooNew) as exc:
            await db.close()
            raise StartupError(fail("DATABASE_PATH", f"cannot open {s.database_path}: {exc}",
                                    "point DATABASE_PATH at a writable file")) from exc
        return db

    def _lock_database(self, path: str) -> None:
        """Before anything is opened: start-up takes over what the last run left (writes in
        flight go again), so the last run must be gone."""
        if path == ":memory:":
            return
        try:
            self._db_lock = sqlite_lock.acquire(path)
        except sqlite_lock.InUse as exc:
            raise StartupError(fail(
                "DATABASE_PATH", str(exc),
                "stop the other process first; to run more than one, use "
                "DATABASE_URL=postgresql://... (one PostgreSQL for every replica)")) from exc
        except OSError as exc:
            raise StartupError(fail(
                "DATABASE_PATH",
                f"cannot create {sqlite_lock.lock_path(path)}: {exc.strerror or exc}",
                "point DATABASE_PATH at a file in a directory this user can write")) from exc

    async def _register_commands(self, db: Database) -> None:
        """Telegram's command menu, per scope (through the outbox, like every write)."""
        s = self.settings
        now = utcnow()
        menu = command_menu(s.locale)
        async with db.write() as conn:
            for scope in ("all_group_chats", "all_private_chats"):
                await outbox.enqueue(conn, kind=outbox.COMMANDS, chat_id=0, now=now,
                                     payload={"scope": scope, "commands": menu})

    async def _start_web(self, ingest_ctx: IngestContext, db: Database, metrics: Metrics,
                         readiness: Readiness) -> None:
        s = self.settings
        app = web.Application(client_max_size=s.max_body_bytes)
        alert_routes.setup_routes(
            app, db=db, ingest_ctx=ingest_ctx, clock=self.clock,
            token=s.alert_webhook_token.get_secret_value(), max_body_bytes=s.max_body_bytes,
            read_timeout=s.webhook_read_timeout.total_seconds(), metrics=metrics,
            readiness=readiness, yield_to=self.delivery.turn if self.delivery else None,
            grafana_signing=GrafanaSigning(
                secret=s.grafana_webhook_secret.get_secret_value(),
                timestamp_header=s.grafana_webhook_timestamp_header,
                max_skew=s.grafana_webhook_max_skew),
        )
        if self.settings.telegram_webhook_url:
            # Updates pushed by Telegram, stored in the inbox before they are answered.
            assert self.inbox is not None and self.bot is not None
            telegram_webhook.setup_routes(
                app, path=TELEGRAM_WEBHOOK_PATH, box=self.inbox, bot=self.bot,
                secret=s.telegram_webhook_secret.get_secret_value(), clock=self.clock,
                read_timeout=s.webhook_read_timeout.total_seconds(),
            )
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        host, port = self.settings.http_host, self.settings.http_port
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(fail("HTTP_PORT", bind_problem(host, port, exc),
                                    bind_fix("HTTP_PORT"))) from exc
        sockets = self.runner.addresses
        self.port = sockets[0][1] if sockets else self.settings.http_port

    async def _poll_updates(self, poller: Poller) -> None:
        try:
            await poller.run(self.clock)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling stopped")

    async def stop(self) -> None:
        """Stop taking work, then let what is under way finish: a long poll is cut (what it
        brings is not confirmed), requests in progress are answered, handlers and the
        Telegram write on the wire finish (each within a bounded wait) and are recorded."""
        await _cancel(self._roles)
        self._roles = None
        if self.leadership is not None:
            await self.leadership.stop()
        await _cancel(self._polling)
        self._polling = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self._stand_by()
        if self.leadership is not None and self.db is not None:
            # Nothing of this process runs now: a standby may take over at once.
            await self.leadership.release()
        if self.state is not None:
            await self.state.close()
        if self.db is not None:
            await self.db.close()
        if self._db_lock is not None:
            self._db_lock.release()
            self._db_lock = None
        if self.bot is not None:
            await self.bot.session.close()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def serve_until_signal(
    settings: Settings, *, label: str = "opsgate",
    on_started: Callable[[App], None] | None = None,
) -> int:
    """Run the app until SIGTERM/SIGINT; a start-up problem is one line on stderr."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = App(settings)
    texts.warm(settings.locale)
    try:
        await app.start()
    except StartupError as exc:
        await app.stop()
        print(f"{label}: cannot start: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        # Whatever else went wrong, close what was opened (the database threads would
        # otherwise keep the process alive and a supervisor would never restart it).
        await app.stop()
        raise
    if on_started is not None:
        on_started(app)
    await stop.wait()
    log.info("stopping")
    await app.stop()
    return 0
