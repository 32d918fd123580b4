"""What /metrics exposes, in one registry per app (tests run several apps in one process).

Every family is created here with its HELP text, and every labelled series whose label
values are known in advance is created at zero, so a fresh process already shows what a
dashboard or an alerting rule refers to. Counters and histograms are fed at the seams that
see the event (webhook intake, Telegram session, delivery, execution); the gauges of stored
state (open incidents, decisions, outbox) are read from the database at each scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import product
from typing import TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

from bot.models import DecisionState
from storage import outbox, repo
from storage.db import Database

# The `_created` series double every counter and say nothing a scrape does not.
prometheus_client.disable_created_metrics()

# The text format every Prometheus version reads (the names here need no escaping).
CONTENT_TYPE = prometheus_client.exposition.CONTENT_TYPE_PLAIN_0_0_4

SOURCES = ("alertmanager", "grafana", "generic")
INTAKE_RESULTS = ("accepted", "refused", "unauthorized", "unavailable")
SEVERITIES = ("critical", "error", "high", "warning", "info", "none", "unknown")
OUTBOX_STATES = ("pending", "sending", "done", "parked")
TELEGRAM_METHODS = (
    "getMe", "getChat", "getChatMember", "getChatAdministrators", "getUpdates", "setWebhook",
    "deleteWebhook", "sendMessage", "editMessageText", "answerCallbackQuery", "setMyCommands",
    "createForumTopic", "editForumTopic", "closeForumTopic", "reopenForumTopic",
)
TELEGRAM_RESULTS = ("ok", "refused", "rate_limited", "server_error", "network_error")
DELIVERY_RESULTS = (
    "sent", "edited", "identical_skipped", "not_modified", "url_fallback", "replies",
    "messages", "retry_after", "transient_errors", "migrated", "parked",
)
EXECUTOR_RESULTS = ("succeeded", "failed", "error")
READY_REASONS = ("telegram", "outbox", "redis", "standby")
ROLES = ("leader", "standby")

Family = TypeVar("Family", bound=MetricWrapperBase)


def _at_zero(family: Family, known: Mapping[str, Sequence[str]]) -> Family:
    """Every combination of the known label values created (at zero) in `family`."""
    if known:
        for labels in product(*known.values()):
            family.labels(*labels)
    return family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Stored-state gauges: every label value shown so far, set to 0 when it is gone.
        self._gauge_values: dict[Gauge, set[str]] = {}
        self.alerts_received = self._counter(
            "opsgate_alerts_received", "Alert webhook requests by source and result "
            "(accepted, refused: 4xx for the request, unauthorized, unavailable: 503).",
            source=SOURCES, result=INTAKE_RESULTS)
        self.alerts_stored = self._counter(
            "opsgate_alerts_stored", "Alerts stored from accepted webhook requests.",
            source=SOURCES)
        self.incidents_open = self._gauge(
            "opsgate_incidents_open", "Incidents firing now, by severity.", severity=SEVERITIES)
        self.decisions = self._gauge(
            "opsgate_decisions", "Decisions stored, by state.",
            state=[s.value for s in DecisionState])
        self.alert_to_card = Histogram(
            "opsgate_alert_to_card_seconds",
            "From an alert opening an incident to its card posted in a chat.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry)
        self.press_to_answer = Histogram(
            "opsgate_press_to_answer_seconds",
            "From a button press reaching the bot to its answerCallbackQuery.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry)
        self.telegram_calls = self._counter(
            "opsgate_telegram_calls", "Bot API calls by method and result (ok, refused: 4xx, "
            "rate_limited: 429, server_error: 5xx, network_error: no answer).",
            method=TELEGRAM_METHODS, result=TELEGRAM_RESULTS)
        self.telegram_rate_limited = self._counter(
            "opsgate_telegram_rate_limited", "Bot API calls answered 429 Too Many Requests.")
        self.telegram_last_reached = self._gauge(
            "opsgate_telegram_last_reached_timestamp_seconds",
            "Unix time of the last answer from the Bot API server (0: none yet).")
        self.delivery = self._counter(
            "opsgate_delivery", "What delivery did with outbox rows and cards.",
            result=DELIVERY_RESULTS)
        self.outbox_rows = self._gauge(
            "opsgate_outbox_rows", "Outbox rows by state (pending + sending = depth).",
            state=OUTBOX_STATES)
        self.outbox_oldest_age = self._gauge(
            "opsgate_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox row not yet sent (0 when none waits).")
        self.executor_runs = self._counter(
            "opsgate_executor_runs", "Executions of approved actions by result "
            "(error: the executor raised).", result=EXECUTOR_RESULTS)
        self.degraded = self._gauge(
            "opsgate_ready_degraded", "1 while /readyz reports this reason as degraded.",
            reason=READY_REASONS)
        self.role = self._gauge(
            "opsgate_role", "1 for this process's role in the leader lease (leader: it polls "
            "Telegram, delivers, executes; standby: it stores alerts and waits), 0 for the "
            "other.", role=ROLES)

    def _counter(self, name: str, doc: str, **known: Sequence[str]) -> Counter:
        """A counter labelled by the keywords' names, every combination of their values
        created at zero."""
        return _at_zero(Counter(name, doc, list(known), registry=self.registry), known)

    def _gauge(self, name: str, doc: str, **known: Sequence[str]) -> Gauge:
        """Like `_counter`; a gauge with one label also remembers its values for `_set_all`."""
        gauge = _at_zero(Gauge(name, doc, list(known), registry=self.registry), known)
        if len(known) == 1:
            self._gauge_values[gauge] = {*next(iter(known.values()))}
        return gauge

    def delivered(self, result: str) -> None:
        self.delivery.labels(result).inc()

    def sample(self, name: str, **labels: str) -> float:
        """One series' current value (0 if absent): for tests and the benchmark."""
        return self.registry.get_sample_value(name, labels) or 0.0

    async def refresh(self, db: Database, now: datetime, degraded: Iterable[str],
                      role: str = "leader") -> None:
        """Set the gauges of stored state from the database, the degraded reasons and the
        role."""
        async with db.read() as conn:
            rows = await outbox.counts(conn)
            oldest = await outbox.oldest_unsent_at(conn)
            severities = await repo.open_incidents_by_severity(conn)
            states = await repo.decision_state_counts(conn)
        self._set_all(self.outbox_rows, rows)
        self.outbox_oldest_age.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0)
        self._set_all(self.incidents_open, severities)
        self._set_all(self.decisions, states)
        reasons = set(degraded)
        for reason in READY_REASONS:
            self.degraded.labels(reason).set(1 if reason in reasons else 0)
        for known in ROLES:
            self.role.labels(known).set(1 if known == role else 0)

    def _set_all(self, family: Gauge, counts: dict[str, int]) -> None:
        """Every value shown so far (0 when the database has none now), plus new ones."""
        seen = self._gauge_values.setdefault(family, set())
        seen.update(counts)
        for value in seen:
            family.labels(value).set(counts.get(value, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
