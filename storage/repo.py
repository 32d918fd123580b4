"""Every SQL statement about incidents, alerts, cards, decisions, audit, silences.

Functions take an open connection so a caller can group several of them in
one `db.write()` transaction. Rows come back as the domain models of bot.models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from bot.models import (
    Alert,
    AlertStatus,
    Approval,
    Decision,
    DecisionState,
    Incident,
    IncidentStatus,
    Matcher,
    Proposal,
    Silence,
)

Conn = aiosqlite.Connection


def ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat()


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def req_ts(value: str) -> datetime:
    """A NOT NULL time column."""
    return datetime.fromisoformat(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


async def _one(conn: Conn, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
    async with conn.execute(sql, tuple(args)) as cur:
        return await cur.fetchone()


async def _all(conn: Conn, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
    async with conn.execute(sql, tuple(args)) as cur:
        return list(await cur.fetchall())


# ---------------------------------------------------------------- incidents


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
        silence_id=row["silence_id"],
        chat_id=row["chat_id"],
    )


async def get_incident(conn: Conn, incident_id: str) -> Incident | None:
    row = await _one(conn, "SELECT * FROM incidents WHERE id = ?", (incident_id,))
    return _incident(row) if row else None


async def open_incident_for_group(conn: Conn, group_key: str) -> Incident | None:
    row = await _one(
        conn, "SELECT * FROM incidents WHERE group_key = ? AND status = 'firing'", (group_key,)
    )
    return _incident(row) if row else None


async def insert_incident(conn: Conn, inc: Incident, truncated: int = 0) -> None:
    await conn.execute(
        """INSERT INTO incidents (id, group_key, group_labels, title, alertname, severity,
               target, namespace, status, firing_count, resolved_count, truncated_alerts,
               opened_at, updated_at, resolved_at, silence_id, chat_id)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (
            inc.id, inc.group_key, _json(inc.group_labels), inc.title, inc.alertname,
            inc.severity, inc.target, inc.namespace, inc.status.value, inc.firing_count,
            inc.resolved_count, truncated, ts(inc.opened_at), ts(inc.updated_at),
            ts(inc.resolved_at), inc.silence_id, inc.chat_id,
        ),
    )


async def update_incident_counts(
    conn: Conn,
    incident_id: str,
    *,
    severity: str,
    truncated: int,
    updated_at: datetime,
) -> Incident:
    """Recompute counts from the alerts table; resolve when nothing fires any more."""
    row = await _one(
        conn,
        """SELECT SUM(status = 'firing') AS firing, SUM(status = 'resolved') AS resolved,
                  MAX(ends_at) AS last_end
           FROM alerts WHERE incident_id = ?""",
        (incident_id,),
    )
    firing = int(row["firing"] or 0) if row else 0
    resolved = int(row["resolved"] or 0) if row else 0
    await conn.execute(
        """UPDATE incidents SET firing_count = ?, resolved_count = ?, severity = ?,
               truncated_alerts = ?, updated_at = ?
           WHERE id = ?""",
        (firing, resolved, severity, truncated, ts(updated_at), incident_id),
    )
    if firing == 0:
        resolved_at = row["last_end"] if row and row["last_end"] else ts(updated_at)
        await conn.execute(
            """UPDATE incidents SET status = 'resolved', resolved_at = ?
               WHERE id = ? AND status = 'firing'""",
            (resolved_at, incident_id),
        )
    inc = await get_incident(conn, incident_id)
    assert inc is not None
    return inc


async def incident_truncated(conn: Conn, incident_id: str) -> int:
    row = await _one(conn, "SELECT truncated_alerts FROM incidents WHERE id = ?", (incident_id,))
    return int(row[0]) if row else 0


async def set_incident_silence(conn: Conn, incident_id: str, silence_id: str | None) -> None:
    await conn.execute(
        "UPDATE incidents SET silence_id = ? WHERE id = ?", (silence_id, incident_id)
    )


async def open_incidents(conn: Conn, chat_id: int | None = None) -> list[Incident]:
    sql = "SELECT * FROM incidents WHERE status = 'firing'"
    args: tuple[Any, ...] = ()
    if chat_id is not None:
        sql += " AND chat_id = ?"
        args = (chat_id,)
    return [_incident(r) for r in await _all(conn, sql + " ORDER BY opened_at", args)]


async def recent_incidents_for_target(
    conn: Conn, target: str, *, exclude: str | None = None, limit: int = 5
) -> list[Incident]:
    rows = await _all(
        conn,
        """SELECT * FROM incidents WHERE target = ? AND id != ?
           ORDER BY opened_at DESC LIMIT ?""",
        (target, exclude or "", limit),
    )
    return [_incident(r) for r in rows]


# ---------------------------------------------------------------- alerts


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
    row = await _one(
        conn,
        "SELECT incident_id FROM alerts WHERE fingerprint = ? AND starts_at = ?",
        (alert.fingerprint, ts(alert.starts_at)),
    )
    return row[0] if row else None


async def upsert_alert(conn: Conn, alert: Alert, incident_id: str, received_at: datetime) -> None:
    """Re-delivery of the same firing episode updates the row, never duplicates it."""
    await conn.execute(
        """INSERT INTO alerts (fingerprint, starts_at, incident_id, status, labels, annotations,
               ends_at, generator_url, source, received_at)
           VALUES (?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT (fingerprint, starts_at) DO UPDATE SET
               status = excluded.status, labels = excluded.labels,
               annotations = excluded.annotations, ends_at = excluded.ends_at,
               generator_url = excluded.generator_url, received_at = excluded.received_at""",
        (
            alert.fingerprint, ts(alert.starts_at), incident_id, alert.status.value,
            _json(alert.labels), _json(alert.annotations), ts(alert.ends_at),
            alert.generator_url, alert.source, ts(received_at),
        ),
    )


async def alerts_of(conn: Conn, incident_id: str) -> list[Alert]:
    rows = await _all(
        conn,
        """SELECT * FROM alerts WHERE incident_id = ?
           ORDER BY status = 'resolved', starts_at, fingerprint""",
        (incident_id,),
    )
    return [_alert(r) for r in rows]


# ---------------------------------------------------------------- cards


class CardRow:
    __slots__ = ("chat_id", "incident_id", "last_rendered_hash", "message_id", "message_thread_id")

    def __init__(self, row: aiosqlite.Row) -> None:
        self.incident_id: str = row["incident_id"]
        self.chat_id: int = row["chat_id"]
        self.message_id: int | None = row["message_id"]
        self.message_thread_id: int | None = row["message_thread_id"]
        self.last_rendered_hash: str | None = row["last_rendered_hash"]


async def get_card(conn: Conn, incident_id: str, chat_id: int) -> CardRow | None:
    row = await _one(
        conn, "SELECT * FROM cards WHERE incident_id = ? AND chat_id = ?", (incident_id, chat_id)
    )
    return CardRow(row) if row else None


async def card_by_message(conn: Conn, chat_id: int, message_id: int) -> CardRow | None:
    row = await _one(
        conn, "SELECT * FROM cards WHERE chat_id = ? AND message_id = ?", (chat_id, message_id)
    )
    return CardRow(row) if row else None


async def save_card(
    conn: Conn,
    incident_id: str,
    chat_id: int,
    *,
    message_id: int | None,
    thread_id: int | None,
    rendered_hash: str | None,
) -> None:
    await conn.execute(
        """INSERT INTO cards (incident_id, chat_id, message_id, message_thread_id,
               last_rendered_hash)
           VALUES (?,?,?,?,?)
           ON CONFLICT (incident_id, chat_id) DO UPDATE SET
               message_id = excluded.message_id,
               message_thread_id = excluded.message_thread_id,
               last_rendered_hash = excluded.last_rendered_hash""",
        (incident_id, chat_id, message_id, thread_id, rendered_hash),
    )


async def incidents_without_card(conn: Conn) -> list[Incident]:
    rows = await _all(
        conn,
        """SELECT i.* FROM incidents i
           LEFT JOIN cards c ON c.incident_id = i.id AND c.message_id IS NOT NULL
           WHERE c.incident_id IS NULL AND i.silence_id IS NULL AND i.status = 'firing'""",
    )
    return [_incident(r) for r in rows]


# ---------------------------------------------------------------- decisions


def _decision(row: aiosqlite.Row) -> Decision:
    return Decision(
        id=row["id"],
        incident_id=row["incident_id"],
        state=DecisionState(row["state"]),
        proposal=Proposal.model_validate_json(row["proposal"]) if row["proposal"] else None,
        required_approvals=row["required_approvals"],
        created_at=req_ts(row["created_at"]),
        updated_at=req_ts(row["updated_at"]),
        invalid_reason=row["invalid_reason"],
        decided_by=row["decided_by"],
        decided_by_id=row["decided_by_id"],
        decided_at=parse_ts(row["decided_at"]),
        reason=row["reason"],
        result=json.loads(row["result"]) if row["result"] else None,
        auto_approved=bool(row["auto_approved"]),
    )


async def insert_decision(conn: Conn, incident_id: str, now: datetime) -> int:
    cur = await conn.execute(
        """INSERT INTO decisions (incident_id, state, created_at, updated_at)
           VALUES (?, 'analyzing', ?, ?)""",
        (incident_id, ts(now), ts(now)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def get_decision(conn: Conn, decision_id: int) -> Decision | None:
    row = await _one(conn, "SELECT * FROM decisions WHERE id = ?", (decision_id,))
    return _decision(row) if row else None


async def decision_extras(conn: Conn, decision_id: int) -> tuple[str | None, int | None]:
    """The stored effect text and playbook id of a decision."""
    row = await _one(
        conn, "SELECT effect, playbook_id FROM decisions WHERE id = ?", (decision_id,)
    )
    return (row["effect"], row["playbook_id"]) if row else (None, None)


async def current_decision(conn: Conn, incident_id: str) -> Decision | None:
    row = await _one(
        conn,
        "SELECT * FROM decisions WHERE incident_id = ? AND state != 'superseded'",
        (incident_id,),
    )
    return _decision(row) if row else None


async def decisions_in_state(conn: Conn, state: DecisionState) -> list[Decision]:
    rows = await _all(conn, "SELECT * FROM decisions WHERE state = ? ORDER BY id", (state.value,))
    return [_decision(r) for r in rows]


async def pending_older_than(conn: Conn, cutoff: datetime) -> list[Decision]:
    rows = await _all(
        conn,
        "SELECT * FROM decisions WHERE state = 'pending' AND updated_at < ? ORDER BY id",
        (ts(cutoff),),
    )
    return [_decision(r) for r in rows]


async def transition(
    conn: Conn,
    decision_id: int,
    expected: DecisionState | Iterable[DecisionState],
    new: DecisionState,
    now: datetime,
    **fields: Any,
) -> bool:
    """Compare-and-set: exactly one caller wins; the row count says who."""
    states = [expected] if isinstance(expected, DecisionState) else list(expected)
    sets = ["state = ?", "updated_at = ?"]
    args: list[Any] = [new.value, ts(now)]
    for name, value in fields.items():
        sets.append(f"{name} = ?")
        if isinstance(value, datetime):
            value = ts(value)
        elif isinstance(value, Proposal):
            value = value.model_dump_json()
        elif isinstance(value, dict):
            value = _json(value)
        elif isinstance(value, bool):
            value = int(value)
        args.append(value)
    placeholders = ",".join("?" for _ in states)
    args.extend([decision_id, *(s.value for s in states)])
    cur = await conn.execute(
        f"UPDATE decisions SET {', '.join(sets)} WHERE id = ? AND state IN ({placeholders})",
        args,
    )
    return cur.rowcount == 1


async def set_reason(conn: Conn, decision_id: int, reason: str) -> bool:
    cur = await conn.execute(
        "UPDATE decisions SET reason = ? WHERE id = ? AND state = 'rejected'",
        (reason, decision_id),
    )
    return cur.rowcount == 1


async def add_approval(
    conn: Conn, decision_id: int, user_id: int, name: str, now: datetime
) -> bool:
    cur = await conn.execute(
        """INSERT INTO approvals (decision_id, user_id, user_name, at) VALUES (?,?,?,?)
           ON CONFLICT DO NOTHING""",
        (decision_id, user_id, name, ts(now)),
    )
    return cur.rowcount == 1


async def approvals_of(conn: Conn, decision_id: int) -> list[Approval]:
    rows = await _all(
        conn, "SELECT * FROM approvals WHERE decision_id = ? ORDER BY at, user_id", (decision_id,)
    )
    return [
        Approval(
            decision_id=r["decision_id"], user_id=r["user_id"], user_name=r["user_name"],
            at=req_ts(r["at"]),
        )
        for r in rows
    ]


# ---------------------------------------------------------------- audit


async def audit(
    conn: Conn,
    *,
    action: str,
    result: str,
    now: datetime,
    user_id: int | None = None,
    user_name: str | None = None,
    chat_id: int | None = None,
    incident_id: str | None = None,
    decision_id: int | None = None,
    detail: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit (at, user_id, user_name, chat_id, incident_id, decision_id,
               action, result, detail)
           VALUES (?,?,?,?,?,?,?,?,?)""",
        (ts(now), user_id, user_name, chat_id, incident_id, decision_id, action, result, detail),
    )


async def audit_rows(conn: Conn, incident_id: str | None = None) -> list[dict[str, Any]]:
    if incident_id is None:
        rows = await _all(conn, "SELECT * FROM audit ORDER BY id")
    else:
        rows = await _all(conn, "SELECT * FROM audit WHERE incident_id = ? ORDER BY id",
                          (incident_id,))
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- silences


def _silence(row: aiosqlite.Row) -> Silence:
    return Silence(
        id=row["id"],
        matchers=[Matcher.model_validate(m) for m in json.loads(row["matchers"])],
        reason=row["reason"],
        created_by=row["created_by"],
        created_by_id=row["created_by_id"],
        starts_at=req_ts(row["starts_at"]),
        ends_at=req_ts(row["ends_at"]),
        expired_at=parse_ts(row["expired_at"]),
    )


async def insert_silence(conn: Conn, silence: Silence) -> None:
    await conn.execute(
        """INSERT INTO silences (id, matchers, reason, created_by, created_by_id, starts_at,
               ends_at) VALUES (?,?,?,?,?,?,?)""",
        (
            silence.id, _json([m.model_dump() for m in silence.matchers]), silence.reason,
            silence.created_by, silence.created_by_id, ts(silence.starts_at),
            ts(silence.ends_at),
        ),
    )


async def active_silences(conn: Conn, now: datetime) -> list[Silence]:
    rows = await _all(
        conn,
        """SELECT * FROM silences WHERE expired_at IS NULL AND starts_at <= ? AND ends_at > ?
           ORDER BY ends_at""",
        (ts(now), ts(now)),
    )
    return [_silence(r) for r in rows]


async def get_silence(conn: Conn, silence_id: str) -> Silence | None:
    row = await _one(conn, "SELECT * FROM silences WHERE id = ?", (silence_id,))
    return _silence(row) if row else None


# ---------------------------------------------------------------- meta


async def get_meta(conn: Conn, key: str) -> str | None:
    row = await _one(conn, "SELECT value FROM meta WHERE key = ?", (key,))
    return row[0] if row else None


async def set_meta(conn: Conn, key: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
        (key, value, value),
    )


async def cards_of(conn: Conn, incident_id: str) -> list[CardRow]:
    """Every chat an incident lives in (one card each)."""
    rows = await _all(conn, "SELECT * FROM cards WHERE incident_id = ? ORDER BY rowid",
                      (incident_id,))
    return [CardRow(r) for r in rows]


async def plan_card(conn: Conn, incident_id: str, chat_id: int, thread_id: int | None) -> None:
    """Record where a card will go, before it is sent."""
    await conn.execute(
        """INSERT INTO cards (incident_id, chat_id, message_thread_id) VALUES (?,?,?)
           ON CONFLICT (incident_id, chat_id) DO NOTHING""",
        (incident_id, chat_id, thread_id),
    )


async def set_card_thread(conn: Conn, incident_id: str, chat_id: int, thread_id: int) -> None:
    await conn.execute(
        "UPDATE cards SET message_thread_id = ? WHERE incident_id = ? AND chat_id = ?",
        (thread_id, incident_id, chat_id),
    )


# ---------------------------------------------------------------- silences (chat)


async def insert_chat_silence(conn: Conn, silence: Silence, chat_id: int | None) -> None:
    await insert_silence(conn, silence)
    await conn.execute("UPDATE silences SET chat_id = ? WHERE id = ?", (chat_id, silence.id))


async def set_silence_am_id(conn: Conn, silence_id: str, am_id: str) -> None:
    await conn.execute("UPDATE silences SET am_id = ? WHERE id = ?", (am_id, silence_id))


async def silence_extras(conn: Conn, silence_id: str) -> tuple[int | None, str | None]:
    row = await _one(conn, "SELECT chat_id, am_id FROM silences WHERE id = ?", (silence_id,))
    return (row["chat_id"], row["am_id"]) if row else (None, None)


async def known_am_ids(conn: Conn) -> set[str]:
    rows = await _all(conn, "SELECT am_id FROM silences WHERE am_id IS NOT NULL")
    return {r[0] for r in rows}


async def expire_silence(conn: Conn, silence_id: str, now: datetime) -> bool:
    cur = await conn.execute(
        """UPDATE silences SET expired_at = ?, announced = 1
           WHERE id = ? AND expired_at IS NULL AND ends_at > ?""",
        (ts(now), silence_id, ts(now)),
    )
    return cur.rowcount == 1


async def ended_unannounced(conn: Conn, now: datetime) -> list[Silence]:
    rows = await _all(
        conn,
        "SELECT * FROM silences WHERE announced = 0 AND (expired_at IS NOT NULL OR ends_at <= ?)",
        (ts(now),),
    )
    return [_silence(r) for r in rows]


async def mark_announced(conn: Conn, silence_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE silences SET announced = 1 WHERE id = ? AND announced = 0", (silence_id,)
    )
    return cur.rowcount == 1


async def incidents_with_silence(conn: Conn, silence_id: str) -> list[Incident]:
    rows = await _all(conn, "SELECT * FROM incidents WHERE silence_id = ?", (silence_id,))
    return [_incident(r) for r in rows]


async def firing_labels(conn: Conn, incident_id: str) -> list[dict[str, str]]:
    rows = await _all(
        conn, "SELECT labels FROM alerts WHERE incident_id = ? AND status = 'firing'",
        (incident_id,),
    )
    return [json.loads(r[0]) for r in rows]


# ---------------------------------------------------------------- history


def _history_filter(query: str | None) -> tuple[str, tuple[Any, ...]]:
    if not query:
        return "", ()
    if query.upper().startswith("INC-"):
        return " WHERE id = ?", (query.upper(),)
    return " WHERE target = ? OR alertname = ?", (query, query)


async def history_page(
    conn: Conn, query: str | None, limit: int, offset: int
) -> tuple[list[Incident], int]:
    where, args = _history_filter(query)
    row = await _one(conn, "SELECT COUNT(*) FROM incidents" + where, args)
    total = int(row[0]) if row else 0
    rows = await _all(
        conn, "SELECT * FROM incidents" + where + " ORDER BY opened_at DESC, id LIMIT ? OFFSET ?",
        (*args, limit, offset),
    )
    return [_incident(r) for r in rows], total


# ---------------------------------------------------------------- topics


async def get_topic(conn: Conn, chat_id: int, group_key: str) -> tuple[int, bool] | None:
    row = await _one(
        conn, "SELECT thread_id, closed FROM topics WHERE chat_id = ? AND group_key = ?",
        (chat_id, group_key),
    )
    return (int(row[0]), bool(row[1])) if row else None


async def save_topic(conn: Conn, chat_id: int, group_key: str, thread_id: int, name: str,
                     closed: bool = False) -> None:
    await conn.execute(
        """INSERT INTO topics (chat_id, group_key, thread_id, name, closed) VALUES (?,?,?,?,?)
           ON CONFLICT (chat_id, group_key) DO UPDATE SET
               thread_id = excluded.thread_id, name = excluded.name, closed = excluded.closed""",
        (chat_id, group_key, thread_id, name, int(closed)),
    )


# ---------------------------------------------------------------- chat migrations


async def record_migration(conn: Conn, old: int, new: int, now: datetime) -> bool:
    cur = await conn.execute(
        "INSERT INTO chat_migrations (old_chat_id, new_chat_id, at) VALUES (?,?,?)"
        " ON CONFLICT DO NOTHING",
        (old, new, ts(now)),
    )
    return cur.rowcount == 1


async def migrations(conn: Conn) -> list[tuple[int, int]]:
    rows = await _all(conn, "SELECT old_chat_id, new_chat_id FROM chat_migrations ORDER BY at")
    return [(int(r[0]), int(r[1])) for r in rows]


async def move_chat(conn: Conn, old: int, new: int) -> list[str]:
    """Point everything at the new chat. Open incidents' cards must be posted again
    (messages of the old group cannot be edited any more); returns their ids."""
    await conn.execute(
        "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND state IN ('pending', 'sending')",
        (new, old),
    )
    open_ids = [
        r[0] for r in await _all(
            conn, "SELECT id FROM incidents WHERE chat_id = ? AND status = 'firing'", (old,)
        )
    ]
    await conn.execute("UPDATE incidents SET chat_id = ? WHERE chat_id = ?", (new, old))
    await conn.execute(
        """UPDATE cards SET chat_id = ?, message_id = NULL, last_rendered_hash = NULL,
               message_thread_id = NULL
           WHERE chat_id = ?
             AND incident_id IN (SELECT id FROM incidents WHERE status = 'firing')""",
        (new, old),
    )
    await conn.execute("UPDATE silences SET chat_id = ? WHERE chat_id = ?", (new, old))
    return open_ids
