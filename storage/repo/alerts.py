"""The alerts table: one row per firing episode (fingerprint + startsAt)."""

from __future__ import annotations

import json
from datetime import datetime

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


async def alert_owner(conn: Conn, alert: Alert) -> str | None:
    row = await fetch_one(
        conn,
        "SELECT incident_id FROM alerts WHERE fingerprint = ? AND starts_at = ?",
        (alert.fingerprint, ts(alert.starts_at)),
    )
    return row[0] if row else None


async def firing_start(conn: Conn, fingerprint: str) -> datetime | None:
    """Start of the latest episode of `fingerprint` that is still firing."""
    row = await fetch_one(
        conn,
        """SELECT starts_at FROM alerts WHERE fingerprint = ? AND status = 'firing'
           ORDER BY starts_at DESC LIMIT 1""",
        (fingerprint,),
    )
    return req_ts(row[0]) if row else None


async def upsert_alert(conn: Conn, alert: Alert, incident_id: str, received_at: datetime) -> None:
    """Re-delivery of the same firing episode updates the row, never duplicates it. A
    resolved episode stays resolved: a "firing" for it is an older notification arriving
    late (Alertmanager retries), since a re-fire starts a new episode (a new startsAt)."""
    await conn.execute(
        """INSERT INTO alerts (fingerprint, starts_at, incident_id, status, labels, annotations,
               ends_at, generator_url, source, received_at)
           VALUES (?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
               status = excluded.status, labels = excluded.labels,
               annotations = excluded.annotations, ends_at = excluded.ends_at,
               generator_url = excluded.generator_url, received_at = excluded.received_at
           WHERE alerts.status != 'resolved'""",
        (
            alert.fingerprint, ts(alert.starts_at), incident_id, alert.status.value,
            to_json(alert.labels), to_json(alert.annotations), ts(alert.ends_at),
            alert.generator_url, alert.source, ts(received_at),
        ),
    )


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
