"""Domain objects for unit tests: one place for the defaults."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.models import Incident
from storage.db import _migrations, _split_sql

T0 = datetime(2026, 11, 27, 13, 7, 56, tzinfo=UTC)
UTC_TZ = ZoneInfo("UTC")


def make_incident(i: int | None = None, **kw: Any) -> Incident:
    """A firing crash-loop incident; `i` numbers a series (ids, opening times)."""
    base: dict[str, Any] = dict(
        id="INC-7K3F9Q" if i is None else f"INC-{i:06d}",
        group_key='{}:{alertname="KubePodCrashLooping"}',
        group_labels={},
        title="Pod shop/cart is crash looping",
        alertname="KubePodCrashLooping",
        severity="critical",
        target="cart",
        namespace="shop",
        status="firing",
        firing_count=3,
        resolved_count=0,
        opened_at=T0 - timedelta(minutes=i or 0),
        updated_at=T0,
        chat_id=-1001234567890,
    )
    base.update(kw)
    return Incident(**base)


# A proven low-risk playbook for the crash-loop fixture (format runs, successes, recent).
AUTO_PLAYBOOK = """
[[playbook]]
name = "scale cart out"
description = "Scale to 4 replicas"
risk = "low"
created_by = "@alice"
created_at = "2026-11-01T00:00:00+00:00"
runs = {runs}
successes = {successes}
recent = "{recent}"

[playbook.symptoms]
alertnames = ["LabPodCrashLooping"]
services = []
namespaces = ["shop"]
severities = []

[playbook.action]
verb = "scale"
target_kind = "deployment"
params = {{ replicas = 4 }}
"""


def schema_before(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite file with every migration before `version` applied, as a database made by
    an older release: the test fills it, closes it, and opens it with Database (which
    migrates the rest)."""
    conn = sqlite3.connect(path)
    for number, _, sql in _migrations():
        if number >= version:
            break
        for statement in _split_sql(sql):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={number}")
    return conn
