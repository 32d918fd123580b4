"""The incidents table: one row per group of alerts, open until nothing fires."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import aiosqlite

from bot.models import Incident, IncidentStatus
from storage.repo.sql import Conn, fetch_all, fetch_one, parse_ts, req_ts, to_json, ts


def _incident(row: aiosqlite.Row) -> Incident:
    return Incident(
        id=row["id"],
        group_key=row["group_key"],
        group_labels=json.loads(row["group_labels"]),
        title=row["title"],
        alertname=row["alertname"],
        severity=row["severity"],
        target=row["target"],
        namespace=row["namespace"],
        status=IncidentStatus(row["status"]),
        firing_count=row["firing_count"],
        resolved_count=row["resolved_count"],
        opened_at=req_ts(row["opened_at"]),
        updated_at=req_ts(row["updated_at"]),
        resolved_at=parse_ts(row["resolved_at"]),
        chat_id=row["chat_id"],
        acked_by_id=row["acked_by_id"],
        acked_by=row["acked_by"],
        acked_at=parse_ts(row["acked_at"]),
    )


async def get_incident(conn: Conn, incident_id: str) -> Incident | None:
    row = await fetch_one(conn, "SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return _incident(row) if row else None


async def open_incident_for_group(conn: Conn, group_key: str) -> Incident | None:
    row = await fetch_one(
        conn, "SELECT * FROM incidents WHERE group_key = ? AND status = 'firing'", (group_key,)
    )
    return _incident(row) if row else None


async def insert_incident(conn: Conn, inc: Incident, truncated: int = 0) -> None:
    await conn.execute(
        """INSERT INTO incidents (id, group_key, group_labels, title, alertname, severity,
               target, namespace, status, firing_count, resolved_count, truncated_alerts,
               opened_at, updated_at, resolved_at, chat_id)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (
            inc.id, inc.group_key, to_json(inc.group_labels), inc.title, inc.alertname,
            inc.severity, inc.target, inc.namespace, inc.status.value, inc.firing_count,
            inc.resolved_count, truncated, ts(inc.opened_at), ts(inc.updated_at),
            ts(inc.resolved_at), inc.chat_id,
        ),
    )


async def update_incident_counts(
    conn: Conn,
    incident_id: str,
    *,
    firing: int,
    resolved: int,
    severity: str,
    truncated: int,
    updated_at: datetime,
) -> Incident:
    """Store the counts (from incident_alert_counts); resolve when nothing fires any more,
    at the last end of its alerts (one index probe: alerts_incident_end)."""
    await conn.execute(
        """UPDATE incidents SET firing_count = ?, resolved_count = ?, severity = ?,
               truncated_alerts = ?, updated_at = ?
           WHERE id = ?""",
        (firing, resolved, severity, truncated, ts(updated_at), incident_id),
    )
    if firing == 0:
        row = await fetch_one(
            conn, "SELECT MAX(ends_at) FROM alerts WHERE incident_id = ?", (incident_id,)
        )
        resolved_at = row[0] if row and row[0] else ts(updated_at)
        await conn.execute(
            """UPDATE incidents SET status = 'resolved', resolved_at = ?
               WHERE id = ? AND status = 'firing'""",
            (resolved_at, incident_id),
        )
        # A resolved incident is never reminded of: its cards leave the due scan.
        await conn.execute(
            "UPDATE cards SET next_remind_at = NULL WHERE incident_id = ?", (incident_id,)
        )
    inc = await get_incident(conn, incident_id)
    assert inc is not None
    return inc


async def incident_truncated(conn: Conn, incident_id: str) -> int:
    row = await fetch_one(
        conn, "SELECT truncated_alerts FROM incidents WHERE id = ?", (incident_id,)
    )
    return int(row[0]) if row else 0


# An incident is in a chat when it has a card row there (ingest plans one per route).
_IN_CHAT = "EXISTS (SELECT 1 FROM cards c WHERE c.incident_id = incidents.id AND c.chat_id = ?)"


async def open_incidents(conn: Conn, chat_id: int | None = None) -> list[Incident]:
    """Every firing incident, or those routed into one chat."""
    sql = "SELECT * FROM incidents WHERE status = 'firing'"
    args: tuple[Any, ...] = ()
    if chat_id is not None:
        sql += " AND " + _IN_CHAT
        args = (chat_id,)
    return [_incident(r) for r in await fetch_all(conn, sql + " ORDER BY opened_at", args)]


async def open_incidents_by_severity(conn: Conn) -> dict[str, int]:
    rows = await fetch_all(
        conn, "SELECT severity, COUNT(*) FROM incidents WHERE status = 'firing' GROUP BY severity"
    )
    return {row[0]: row[1] for row in rows}


async def recent_incidents_for_target(
    conn: Conn, target: str, *, exclude: str | None = None, limit: int = 5,
    chat_id: int | None = None,
) -> list[Incident]:
    sql = "SELECT * FROM incidents WHERE target = ? AND id != ?"
    args: tuple[Any, ...] = (target, exclude or "")
    if chat_id is not None:
        sql += " AND " + _IN_CHAT
        args = (*args, chat_id)
    rows = await fetch_all(conn, sql + " ORDER BY opened_at DESC LIMIT ?", (*args, limit))
    return [_incident(r) for r in rows]


async def incidents_without_card(conn: Conn) -> list[Incident]:
    """Firing incidents with a card still to post: planned in a chat where it is not
    silenced nor held in a storm's digest, or never planned at all (accepted before the
    crash that stopped it)."""
    rows = await fetch_all(
        conn,
        """SELECT i.* FROM incidents i
           WHERE i.status = 'firing' AND (
               EXISTS (SELECT 1 FROM cards c WHERE c.incident_id = i.id
                       AND c.message_id IS NULL AND c.silence_id IS NULL AND c.held = 0)
               OR NOT EXISTS (SELECT 1 FROM cards c WHERE c.incident_id = i.id))""",
    )
    return [_incident(r) for r in rows]


def _history_filter(query: str | None, chat_id: int | None) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    args: tuple[Any, ...] = ()
    if query and query.upper().startswith("INC-"):
        clauses, args = ["id = ?"], (query.upper(),)
    elif query:
        clauses, args = ["(target = ? OR alertname = ?)"], (query, query)
    if chat_id is not None:
        clauses.append(_IN_CHAT)
        args = (*args, chat_id)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


async def history_page(
    conn: Conn, query: str | None, limit: int, offset: int, chat_id: int | None = None
) -> tuple[list[Incident], int]:
    where, args = _history_filter(query, chat_id)
    row = await fetch_one(conn, "SELECT COUNT(*) FROM incidents" + where, args)
    total = int(row[0]) if row else 0
    rows = await fetch_all(
        conn, "SELECT * FROM incidents" + where + " ORDER BY opened_at DESC, id LIMIT ? OFFSET ?",
        (*args, limit, offset),
    )
    return [_incident(r) for r in rows], total
