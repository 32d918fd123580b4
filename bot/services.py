"""The running services, as handlers see them (Dispatcher data and aiohttp app key)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.alerts.ingest import IngestContext
from bot.alerts.routing import RouteTable
from bot.chat.answers import Console
from bot.chat.card_buttons import Inquiries
from bot.config import Settings
from bot.incidents.approvals import ApprovalService, Authorizer
from bot.pipeline import Pipeline
from bot.silences.service import SilenceService
from bot.telegram.chat_migration import ChatMigrator
from bot.telegram.delivery import DeliveryWorker
from storage import outbox
from storage.db import Database
from storage.state import StateStore


@dataclass
class Services:
    settings: Settings
    db: Database
    state: StateStore
    clock: Callable[[], datetime]
    ingest_ctx: IngestContext
    authz: Authorizer
    approvals: ApprovalService
    pipeline: Pipeline
    delivery: DeliveryWorker
    inquiries: Inquiries
    routes: RouteTable
    silences: SilenceService
    migrator: ChatMigrator
    console: Console
    bot_username: str = ""
    started_at: float = 0.0
    downtime: float = 0.0  # seconds the bot was away before this start
    metrics: Counter[str] = field(default_factory=Counter)

    def press_is_stale(self, backlog: bool) -> bool:
        """A press that queued while we were away longer than CALLBACK_MAX_AGE.
        A callback query carries no time, so the bot's downtime stands in for its age."""
        return backlog and self.downtime > self.settings.callback_max_age.total_seconds()

    def served_chats(self) -> frozenset[int]:
        return self.routes.chats()

    async def health(self) -> dict[str, Any]:
        async with self.db.read() as conn:
            counts = await outbox.counts(conn)
        return {"status": "ok", "outbox": counts}

    async def metrics_text(self) -> str:
        lines = []
        for name, value in sorted(self.metrics.items()):
            lines.append(f"opsgate_{name}_total {value}")
        for name, value in sorted(self.delivery.metrics.items()):
            lines.append(f'opsgate_delivery_total{{result="{name}"}} {value}')
        async with self.db.read() as conn:
            for state, count in sorted((await outbox.counts(conn)).items()):
                lines.append(f'opsgate_outbox_rows{{state="{state}"}} {count}')
        return "\n".join(lines) + "\n"


SERVICES = web.AppKey("services", Services)
