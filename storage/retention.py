"""Deleting what retention no longer keeps: old resolved incidents (and every row that
belongs to them), old audit rows, delivered outbox rows, ended silences.

Candidates are found on the read connection (a scan there never holds the writer) in
bounded batches; the deletes by key then run in short write transactions. Rows that
point at an incident through a foreign key are found from the schema itself, so a table
a later migration adds is removed with its incident instead of blocking the delete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from storage import knowledge
from storage.repo.sql import Conn, fetch_all, ts
from storage.schema import references_to

# Decision states that still have work in flight: their incident is never pruned.
_BUSY_DECISIONS = ("analyzing", "approved", "executing")


async def resolved_incidents_before(conn: Conn, before: datetime, limit: int) -> list[str]:
    """Resolved incidents untouched since `before`, with nothing pending, oldest first."""
    rows = await fetch_all(
        conn,
        f"""SELECT i.id FROM incidents i
            WHERE i.status = 'resolved' AND i.resolved_at < ? AND i.updated_at < ?
              AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.incident_id = i.id
                              AND d.state IN ({",".join("?" * len(_BUSY_DECISIONS))}))
              AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = i.id
                              AND o.state IN ('pending', 'sending'))
            ORDER BY i.resolved_at, i.id LIMIT ?""",
        (ts(before), ts(before), *_BUSY_DECISIONS, limit),
    )
    return [row[0] for row in rows]


async def _delete_with_children(
    conn: Conn, table: str, column: str, values: Sequence[object], deleted: Counter[str],
) -> None:
    if not values:
        return
    marks = ",".join("?" * len(values))
    for child, child_col, parent_col in await references_to(conn, table):
        keys = await fetch_all(
            conn, f"SELECT {parent_col} FROM {table} WHERE {column} IN ({marks})", values
        )
        await _delete_with_children(conn, child, child_col, [k[0] for k in keys], deleted)
    cur = await conn.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", tuple(values))
    deleted[table] += max(cur.rowcount, 0)


async def delete_incidents(conn: Conn, ids: Sequence[str]) -> Counter[str]:
    """Delete incidents with everything of theirs: rows referencing them (alerts, cards,
    decisions, approvals, ...), their finished outbox rows and their knowledge entries.
    Audit rows stay: they have their own retention. Rows deleted, per table."""
    deleted: Counter[str] = Counter()
    if not ids:
        return deleted
    marks = ",".join("?" * len(ids))
    cur = await conn.execute(
        f"""DELETE FROM outbox WHERE incident_id IN ({marks})
            AND state NOT IN ('pending', 'sending')""",
        tuple(ids),
    )
    deleted["outbox"] += max(cur.rowcount, 0)
    docs = await fetch_all(
        conn, f"SELECT id FROM knowledge WHERE kind = 'incident' AND ref IN ({marks})", ids
    )
    deleted["knowledge"] += await knowledge.delete_docs(conn, [d[0] for d in docs])
    await _delete_with_children(conn, "incidents", "id", ids, deleted)
    return deleted


async def audit_before(conn: Conn, before: datetime, limit: int) -> list[int]:
    rows = await fetch_all(
        conn, "SELECT id FROM audit WHERE at < ? ORDER BY id LIMIT ?", (ts(before), limit)
    )
    return [row[0] for row in rows]


async def delivered_outbox_before(conn: Conn, before: datetime, limit: int) -> list[int]:
    rows = await fetch_all(
        conn,
        "SELECT id FROM outbox WHERE state = 'done' AND created_at < ? ORDER BY id LIMIT ?",
        (ts(before), limit),
    )
    return [row[0] for row in rows]


async def ended_silences_before(conn: Conn, before: datetime, limit: int) -> list[str]:
    """Silences that ended (or were expired) before `before` and cover no kept incident."""
    rows = await fetch_all(
        conn,
        """SELECT s.id FROM silences s
           WHERE COALESCE(s.expired_at, s.ends_at) < ?
             AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.silence_id = s.id)
           ORDER BY s.ends_at LIMIT ?""",
        (ts(before), limit),
    )
    return [row[0] for row in rows]


async def delete_rows(conn: Conn, table: str, ids: Sequence[int | str]) -> int:
    """Delete rows of audit, outbox or silences by primary key."""
    if table not in ("audit", "outbox", "silences"):
        raise ValueError(f"not a table rows are pruned from by key: {table}")
    if not ids:
        return 0
    marks = ",".join("?" * len(ids))
    cur = await conn.execute(f"DELETE FROM {table} WHERE id IN ({marks})", tuple(ids))
    return max(cur.rowcount, 0)
