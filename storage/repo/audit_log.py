"""The audit table: who did what, when and where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.repo.sql import Conn, fetch_all, ts


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
        rows = await fetch_all(conn, "SELECT * FROM audit ORDER BY id")
    else:
        rows = await fetch_all(conn, "SELECT * FROM audit WHERE incident_id = ? ORDER BY id",
                          (incident_id,))
    return [dict(r) for r in rows]
