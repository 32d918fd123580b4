"""The compare-and-set that moves a decision from one state to the next.

`UPDATE ... WHERE id = ? AND state IN (...)`: of two callers racing for the
same transition (two presses, two processes) exactly one sees a row count of
one. bot.incidents.states decides which transitions exist; this only runs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.models import DecisionState, Proposal
from storage.db import Wake, mark
from storage.repo.sql import Conn, ts


def _column(value: Any) -> Any:
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, Proposal):
        return value.model_dump_json()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return value


async def compare_and_set(
    conn: Conn,
    decision_id: int,
    expected: Iterable[DecisionState],
    new: DecisionState,
    now: datetime,
    *,
    open_incident: bool = False,
    **fields: Any,
) -> bool:
    """Move the decision to `new` if it is in one of `expected` (and, with
    `open_incident`, its incident still fires), setting `fields` with it.
    True for the one caller that moved it."""
    states = [s.value for s in expected]
    sets = ["state = ?", "updated_at = ?", *(f"{name} = ?" for name in fields)]
    args: list[Any] = [new.value, ts(now), *(_column(v) for v in fields.values())]
    where = f"id = ? AND state IN ({','.join('?' for _ in states)})"
    if open_incident:
        where += " AND incident_id IN (SELECT id FROM incidents WHERE status = 'firing')"
    cur = await conn.execute(
        f"UPDATE decisions SET {', '.join(sets)} WHERE {where}", [*args, decision_id, *states]
    )
    won = cur.rowcount == 1
    if won and new is DecisionState.APPROVED:
        mark(conn, Wake.EXECUTION)
    return won
