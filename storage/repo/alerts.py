"""The alerts table: one row per firing episode (fingerprint + startsAt)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from bot.models import Alert, AlertStatus
from storage.repo.sql import Conn, fetch_all, fetch_one, parse_ts, req_ts, to_json, ts


def _alert(row: aiosqlite.Row) -> Alert:
    return Alert(
        fingerprint=row["fingerprint"],
        status=AlertStatus(row["status"]),
        labels=json.loads(row["labels"]),
        annotations=json.loads(row["annotations"]),
        starts_at=req_ts(row["starts_at"]),
        ends_at=parse_ts(row["ends_at"]),
        generator_url=row["generator_url"],
        source=row["source"],
    )


@dataclass(frozen=True)
class StoredAlert:
    """What the alerts table holds for one firing episode, as the incident's counts see it:
    its incident, status and labels."""

    incident_id: str
    status: str
    labels: dict[str, str]

    @property
    def severity(self) -> str:
        """The severity label as incident_alert_counts keys it ('' when absent; the
        migration that made the table reads it the same way, with json_extract)."""
        return self.labels.get("severity", "")


_LOOKUP_CHUNK = 400  # alerts per query: two variables each, within SQLite's oldest limit


async def stored_alerts(conn: Conn, alerts: Sequence[Alert]) -> list[StoredAlert | None]:
    """What the table holds for each alert's episode (None: not stored), in one query per
    few hundred alerts."""
    found: dict[tuple[str, str], StoredAlert] = {}
    texts: dict[datetime, str] = {}
    keys = [(a.fingerprint, _ts_in(texts, a.starts_at)) for a in alerts]
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start:start + _LOOKUP_CHUNK]
        rows = await fetch_all(
            conn,
            f"""WITH k(fingerprint, starts_at) AS (VALUES {",".join(["(?,?)"] * len(chunk))})
                SELECT a.fingerprint, a.starts_at, a.incident_id, a.status, a.labels
                FROM k JOIN alerts a
                  ON a.fingerprint = k.fingerprint AND a.starts_at = k.starts_at""",
            [value for key in chunk for value in key],
        )
        for r in rows:
            found[(r[0], r[1])] = StoredAlert(r[2], r[3], json.loads(r[4]))
    return [found.get(key) for key in keys]


async def add_alert_counts(conn: Conn, incident_id: str,
                           deltas: Mapping[tuple[str, str], int]) -> None:
    """Add what a webhook changed to an incident's counts: +1 / -1 per (status, severity)
    an alert entered or left."""
    for (status, severity), delta in sorted(deltas.items()):
        if delta:
            await conn.execute(
                """INSERT INTO incident_alert_counts (incident_id, status, severity, n)
                   VALUES (?,?,?,?)
                   ON CONFLICT (incident_id, status, severity)
                   DO UPDATE SET n = incident_alert_counts.n + excluded.n""",
                (incident_id, status, severity, delta),
            )


async def alert_counts(conn: Conn, incident_id: str) -> dict[tuple[str, str], int]:
    """How many of the incident's alerts are in each (status, severity)."""
    rows = await fetch_all(
        conn,
        "SELECT status, severity, n FROM incident_alert_counts WHERE incident_id = ? AND n > 0",
        (incident_id,),
    )
    return {(r[0], r[1]): r[2] for r in rows}


async def firing_start(conn: Conn, fingerprint: str) -> datetime | None:
    """Start of the latest episode of `fingerprint` that is still firing."""
    row = await fetch_one(
        conn,
        """SELECT starts_at FROM alerts WHERE fingerprint = ? AND status = 'firing'
           ORDER BY starts_at DESC LIMIT 1""",
        (fingerprint,),
    )
    return req_ts(row[0]) if row else None


_UPSERT = """INSERT INTO alerts (fingerprint, starts_at, incident_id, status, labels,
        annotations, ends_at, generator_url, source, received_at)
    VALUES (?,?,?,?,?,?,?,?,?,?)
    ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
        status = excluded.status, labels = excluded.labels,
        annotations = excluded.annotations, ends_at = excluded.ends_at,
        generator_url = excluded.generator_url, received_at = excluded.received_at
    WHERE alerts.status != 'resolved'"""


def _ts_in(texts: dict[datetime, str], value: datetime) -> str:
    """ts(value), converted once per call that keeps `texts` (a payload's alerts mostly
    share their start)."""
    text = texts.get(value)
    if text is None:
        text = texts[value] = value.astimezone(UTC).isoformat()
    return text


def _upsert_args(alert: Alert, incident_id: str, received_at: str | None,
                 texts: dict[datetime, str]) -> tuple[Any, ...]:
    return (
        alert.fingerprint, _ts_in(texts, alert.starts_at), incident_id, alert.status.value,
        to_json(alert.labels), to_json(alert.annotations),
        None if alert.ends_at is None else _ts_in(texts, alert.ends_at),
        alert.generator_url, alert.source, received_at,
    )


async def upsert_alert(conn: Conn, alert: Alert, incident_id: str, received_at: datetime
                       ) -> bool:
    """Re-delivery of the same firing episode updates the row, never duplicates it. A
    resolved episode stays resolved: a "firing" for it is an older notification arriving
    late (Alertmanager retries), since a re-fire starts a new episode (a new startsAt).
    False when the row was left as it was (that case)."""
    cur = await conn.execute(_UPSERT, _upsert_args(alert, incident_id, ts(received_at), {}))
    return cur.rowcount == 1


async def upsert_alerts(conn: Conn, alerts: Sequence[tuple[Alert, str]], received_at: datetime
                        ) -> None:
    """upsert_alert() of each (alert, its incident), in order, in one call."""
    received = ts(received_at)
    texts: dict[datetime, str] = {}
    await conn.executemany(
        _UPSERT,
        [_upsert_args(alert, incident_id, received, texts) for alert, incident_id in alerts])


async def alerts_of(conn: Conn, incident_id: str) -> list[Alert]:
    rows = await fetch_all(
        conn,
        """SELECT * FROM alerts WHERE incident_id = ?
           ORDER BY status = 'resolved', starts_at, fingerprint""",
        (incident_id,),
    )
    return [_alert(r) for r in rows]


async def firing_labels(conn: Conn, incident_id: str) -> list[dict[str, str]]:
    rows = await fetch_all(
        conn, "SELECT labels FROM alerts WHERE incident_id = ? AND status = 'firing'",
        (incident_id,),
    )
    return [json.loads(r[0]) for r in rows]


async def silence_misses(conn: Conn, incident_id: str, silence_id: str) -> int | None:
    """How many of the incident's firing alerts the silence does not match; None when
    that was never counted."""
    row = await fetch_one(
        conn,
        "SELECT misses FROM incident_silence_misses WHERE incident_id = ? AND silence_id = ?",
        (incident_id, silence_id),
    )
    return int(row[0]) if row else None


async def set_silence_misses(conn: Conn, incident_id: str, silence_id: str, misses: int) -> None:
    await conn.execute(
        """INSERT INTO incident_silence_misses (incident_id, silence_id, misses) VALUES (?,?,?)
           ON CONFLICT (incident_id, silence_id) DO UPDATE SET misses = excluded.misses""",
        (incident_id, silence_id, misses),
    )
