"""Logging set-up: plain text (default) or one JSON object a line (LOG_FORMAT=json).

The incident and decision a line is about come from `extra={"incident_id": ...}` or, for
every line logged inside `about(...)`, from a context variable, so the code that knows the
ids sets them once and the lines below it (executor, delivery, engine) need not repeat them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("incident_id", "decision_id")

_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("opsgate_log_context", default=None)


@contextmanager
def about(*, incident_id: str | None = None, decision_id: int | None = None) -> Iterator[None]:
    """Lines logged inside carry these ids (the ones given; outer ones stay)."""
    given = {k: v for k, v in (("incident_id", incident_id), ("decision_id", decision_id))
             if v is not None}
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **given})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Puts the ids of `about(...)` on the record, unless `extra` already did."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(log_format: str = "plain", level: str = "INFO") -> None:
    """Replace the root handlers with one on stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else
                         logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Every update would otherwise be an INFO line.
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, root.level))
