"""Settings from the environment and `.env`. Every variable is listed in .env.example."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.durations import parse_duration, parse_rate
from storage.db import is_url, redacted

TELEGRAM_API = "https://api.telegram.org"

def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
OptionalDuration = Annotated[
    timedelta | None, BeforeValidator(lambda v: None if v in ("", None) else parse_duration(v))]
IntList = Annotated[list[int], NoDecode, BeforeValidator(_split_list)]
StrList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


class LoggingSettings(BaseSettings):
    """Read first, on its own, so every subcommand logs as asked before anything else."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    log_format: Literal["plain", "json"] = "plain"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("use DEBUG, INFO, WARNING or ERROR")
        return level


class Settings(LoggingSettings):

    # Telegram
    telegram_bot_token: SecretStr = Field(default=SecretStr(""))
    telegram_api_base: str = TELEGRAM_API
    telegram_chat_id: int = 0
    approver_ids: IntList = Field(default_factory=list)
    telegram_webhook_url: str = ""
    telegram_webhook_secret: SecretStr = Field(default=SecretStr(""))
    approvers_from_chat_admins: bool = False
    admin_cache_ttl: Duration = timedelta(minutes=5)

    # Alert webhook
    alert_webhook_token: SecretStr = Field(default=SecretStr(""))
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    webhook_read_timeout: Duration = timedelta(seconds=10)
    group_by_labels: StrList = Field(default_factory=lambda: ["alertname", "namespace", "service"])
    grafana_webhook_secret: SecretStr = Field(default=SecretStr(""))
    grafana_webhook_timestamp_header: str = ""
    grafana_webhook_max_skew: Duration = timedelta(minutes=5)

    # Storage
    database_path: str = "data/opsgate.db"
    # postgresql://user:pass@host:5432/db: the system of record for several replicas; when
    # set it wins over DATABASE_PATH.
    database_url: SecretStr = Field(default=SecretStr(""))
    database_busy_timeout: Duration = timedelta(seconds=5)
    redis_url: str = ""

    # Replicas: the leader lease (one process on SQLite always holds it)
    leader_lease: Duration = timedelta(seconds=10)
    leader_renew: OptionalDuration = None  # None: a third of LEADER_LEASE

    # Readiness (/readyz): how long before these count as degraded
    telegram_unreachable_after: Duration = timedelta(minutes=2)
    outbox_stuck_after: Duration = timedelta(minutes=5)

    # Data lifecycle: how long rows are kept (0 = forever), how often pruning runs
    retain_resolved_incidents: Duration = timedelta(days=180)
    retain_audit: Duration = timedelta(days=400)
    retain_delivered_outbox: Duration = timedelta(days=30)
    prune_interval: Duration = timedelta(hours=1)

    # Approvals
    approval_timeout: Duration = timedelta(minutes=60)
    callback_max_age: Duration = timedelta(seconds=60)
    reject_reason_window: Duration = timedelta(minutes=10)
    critical_approvals: int = Field(default=2, ge=1, le=5)
    critical_namespaces: StrList = Field(default_factory=list)

    # On call: who may acknowledge, and reminders while nobody reacts (routes may override)
    ack_by: Literal["anyone", "approvers"] = "anyone"
    remind_after: Duration = timedelta(minutes=10)
    remind_every: Duration = timedelta(minutes=10)
    remind_max: int = Field(default=3, ge=0, le=100)
    remind_batch_over: int = Field(default=3, ge=0)

    # Decisions and execution
    executor: Literal["dry-run", "kubectl", "http"] = "dry-run"
    decision_timeout: Duration = timedelta(seconds=30)
    analysis_concurrency: int = Field(default=8, ge=1)
    rules_path: str = ""
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: SecretStr = Field(default=SecretStr(""))
    kubectl_path: str = "kubectl"
    kubectl_context: str = ""
    allowed_namespaces: StrList = Field(default_factory=list)
    scale_min_replicas: int = Field(default=1, ge=0)
    scale_max_replicas: int = Field(default=20, ge=1)
    executor_timeout: Duration = timedelta(seconds=60)
    executor_http_url: str = ""
    executor_http_secret: SecretStr = Field(default=SecretStr(""))
    auto_approve: bool = False
    auto_approve_min_runs: int = Field(default=5, ge=1)

    # Proposals: knowledge, investigation tools, redaction, consensus
    kb_enabled: bool = True
    kb_path: str = ""
    kb_timeout: Duration = timedelta(seconds=5)
    kb_results: int = Field(default=3, ge=1, le=10)
    embeddings_base_url: str = ""
    embeddings_model: str = ""
    embeddings_api_key: SecretStr = Field(default=SecretStr(""))
    llm_redact_path: str = ""
    llm_tools: bool = True
    llm_tool_max_calls: int = Field(default=5, ge=0, le=20)
    llm_tool_timeout: Duration = timedelta(seconds=10)
    llm_tool_output_max: int = Field(default=4000, ge=200, le=50_000)
    prometheus_url: str = ""
    consensus_severity: str = "critical"
    consensus_models: StrList = Field(default_factory=list)
    consensus_path: str = ""

    # Chat layout
    routes_path: str = ""
    thread_mode: Literal["reply", "topic"] = "reply"
    alertmanager_url: str = ""

    # Presentation
    timezone: str = "UTC"
    locale: Literal["en", "zh-TW"] = "en"

    # Delivery
    delivery_max_attempts: int = Field(default=20, ge=1)
    first_card_wait: Duration = timedelta(seconds=2)
    telegram_pacing: bool = True
    telegram_group_rate: str = "20/1m"  # a group: at most 20 in any sliding minute
    telegram_group_burst: str = "3/3s"  # a group's own bucket: a burst of 3, then 1/s
    telegram_private_rate: str = "3/3s"  # a private chat's bucket
    telegram_global_rate: str = "30/1s"  # every chat together, sliding window
    telegram_people_headroom: int = Field(default=3, ge=0)
    # Storm mode: a chat whose new cards would take longer than this to send at its paced
    # rate gets one digest message for its new incidents (0: off; pacing off: off).
    storm_backlog: Duration = timedelta(seconds=60)
    # Own cards a chat still gets during a storm (critical, or a decision at high risk).
    storm_own_cards: str = "5/1m"

    @field_validator("telegram_group_rate", "telegram_group_burst", "telegram_private_rate",
                     "telegram_global_rate", "storm_own_cards")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _headroom_below_group_rate(self) -> Settings:
        group = parse_rate(self.telegram_group_rate)[0]
        if self.telegram_people_headroom >= group:
            raise ValueError(
                f"TELEGRAM_PEOPLE_HEADROOM={self.telegram_people_headroom} leaves nothing of "
                f"TELEGRAM_GROUP_RATE={self.telegram_group_rate} for new cards; "
                f"use less than {group}")
        return self

    @model_validator(mode="after")
    def _renewal_inside_lease(self) -> Settings:
        if self.leader_lease < timedelta(seconds=1):
            raise ValueError(f"LEADER_LEASE={self.leader_lease} is too short; use at least 1s")
        if not timedelta(0) < self.leader_renew_every < self.leader_lease:
            raise ValueError(
                f"LEADER_RENEW={self.leader_renew} must be longer than 0 and shorter than "
                f"LEADER_LEASE={self.leader_lease} (default: a third of it)")
        return self

    @property
    def leader_renew_every(self) -> timedelta:
        return self.leader_renew if self.leader_renew is not None else self.leader_lease / 3

    @field_validator("retain_resolved_incidents", "retain_audit", "retain_delivered_outbox")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative (0 keeps forever)")
        return value

    @field_validator("first_card_wait")
    @classmethod
    def _no_wait_below_zero(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative (0 posts every card at once)")
        return value

    @field_validator("prune_interval")
    @classmethod
    def _at_least_a_second(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use e.g. UTC, Europe/Berlin)") from exc
        return value

    @field_validator("telegram_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_charset(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("use 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("remind_after", "remind_every")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero (REMIND_MAX=0 turns reminders off)")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if url and not is_url(url):
            raise ValueError("must start with postgresql:// (or leave it empty for SQLite)")
        return value

    @property
    def database(self) -> str:
        """What the database is opened by: DATABASE_URL when set, else DATABASE_PATH."""
        return self.database_url.get_secret_value() or self.database_path

    @property
    def database_shown(self) -> str:
        """The same, fit for a log line or a message (no password)."""
        url = self.database_url.get_secret_value()
        return redacted(url) if url else self.database_path

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def problems_for_run(self) -> list[str]:
        """What stops `python -m bot run`, one line each, naming the variable."""
        problems = []
        if not self.telegram_bot_token.get_secret_value():
            problems.append("TELEGRAM_BOT_TOKEN is not set (get one from @BotFather)")
        if not self.telegram_chat_id:
            problems.append("TELEGRAM_CHAT_ID is not set (send /whoami in the chat to learn it)")
        if self.executor != "dry-run" and not self.alert_webhook_token.get_secret_value():
            problems.append(
                f"ALERT_WEBHOOK_TOKEN must be set when EXECUTOR={self.executor}: "
                "whoever can post alerts chooses what the proposals target"
            )
        if self.telegram_webhook_url and not self.telegram_webhook_secret.get_secret_value():
            problems.append(
                "TELEGRAM_WEBHOOK_SECRET must be set with TELEGRAM_WEBHOOK_URL "
                "(Telegram sends it back so forged updates can be refused)"
            )
        if self.executor == "http" and not self.executor_http_url:
            problems.append("EXECUTOR_HTTP_URL must be set when EXECUTOR=http")
        if self.executor == "http" and not self.executor_http_secret.get_secret_value():
            problems.append("EXECUTOR_HTTP_SECRET must be set when EXECUTOR=http")
        return problems


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad variable, named as the user wrote it in the environment."""
    lines = []
    for err in exc.errors():
        name = str(err["loc"][0]).upper() if err["loc"] else "?"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg} (got {err.get('input')!r})")
    return "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
