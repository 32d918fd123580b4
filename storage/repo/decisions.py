"""The decisions and approvals tables: analyses of an incident and who approved them."""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite

from bot.models import Approval, Decision, DecisionState, Proposal
from storage.db import Wake, mark
from storage.repo.sql import Conn, fetch_all, fetch_one, parse_ts, req_ts, ts


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
    row = await fetch_one(
        conn,
        """INSERT INTO decisions (incident_id, state, created_at, updated_at)
           VALUES (?, 'analyzing', ?, ?) RETURNING id""",
        (incident_id, ts(now), ts(now)),
    )
    mark(conn, Wake.ANALYSIS)
    assert row is not None
    return int(row[0])


async def get_decision(conn: Conn, decision_id: int) -> Decision | None:
    row = await fetch_one(conn, "SELECT * FROM decisions WHERE id = ?", (decision_id,))
    return _decision(row) if row else None


async def decision_extras(conn: Conn, decision_id: int) -> tuple[str | None, int | None]:
    """The stored effect text and playbook id of a decision."""
    row = await fetch_one(
        conn, "SELECT effect, playbook_id FROM decisions WHERE id = ?", (decision_id,)
    )
    return (row["effect"], row["playbook_id"]) if row else (None, None)


async def current_decision(conn: Conn, incident_id: str) -> Decision | None:
    row = await fetch_one(
        conn,
        "SELECT * FROM decisions WHERE incident_id = ? AND state != 'superseded'",
        (incident_id,),
    )
    return _decision(row) if row else None


async def decisions_in_state(conn: Conn, state: DecisionState) -> list[Decision]:
    rows = await fetch_all(
        conn, "SELECT * FROM decisions WHERE state = ? ORDER BY id", (state.value,)
    )
    return [_decision(r) for r in rows]


async def decision_ids_in_state(conn: Conn, state: DecisionState, after: int = 0
                                ) -> list[tuple[int, str]]:
    """(decision id, incident id) of every decision in `state` with an id above `after`,
    oldest first: what a poll needs, without building each decision (a storm leaves
    thousands waiting)."""
    rows = await fetch_all(
        conn, "SELECT id, incident_id FROM decisions WHERE state = ? AND id > ? ORDER BY id",
        (state.value, after),
    )
    return [(r[0], r[1]) for r in rows]


async def pending_older_than(conn: Conn, cutoff: datetime) -> list[Decision]:
    rows = await fetch_all(
        conn,
        "SELECT * FROM decisions WHERE state = 'pending' AND updated_at < ? ORDER BY id",
        (ts(cutoff),),
    )
    return [_decision(r) for r in rows]


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
    rows = await fetch_all(
        conn, "SELECT * FROM approvals WHERE decision_id = ? ORDER BY at, user_id", (decision_id,)
    )
    return [
        Approval(
            decision_id=r["decision_id"], user_id=r["user_id"], user_name=r["user_name"],
            at=req_ts(r["at"]),
        )
        for r in rows
    ]


async def decision_state_counts(conn: Conn) -> dict[str, int]:
    rows = await fetch_all(conn, "SELECT state, COUNT(*) FROM decisions GROUP BY state")
    return {row[0]: row[1] for row in rows}
