"""Every SQL statement about playbooks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiosqlite

from bot.playbook_types import RECENT_KEPT, ActionTemplate, Playbook, Symptoms
from storage.db import Database
from storage.repo.sql import req_ts, ts

_COLUMNS = (
    "name, alertnames, services, namespaces, severities, verb, target_kind, target_name,"
    " namespace, params, risk, description, runs, successes, recent, created_by, created_at"
)
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS.split(",")))


def _row_values(pb: Playbook) -> tuple[Any, ...]:
    s, a = pb.symptoms, pb.action
    return (
        pb.name,
        json.dumps(s.alertnames),
        json.dumps(s.services),
        json.dumps(s.namespaces),
        json.dumps(s.severities),
        a.verb.value,
        a.target_kind,
        a.target_name,
        a.namespace,
        json.dumps(a.params, sort_keys=True),
        pb.risk.value,
        pb.description,
        pb.runs,
        pb.successes,
        pb.recent,
        pb.created_by,
        ts(pb.created_at),
    )


def _playbook(row: aiosqlite.Row) -> Playbook:
    return Playbook(
        id=row["id"],
        name=row["name"],
        symptoms=Symptoms(
            alertnames=json.loads(row["alertnames"]),
            services=json.loads(row["services"]),
            namespaces=json.loads(row["namespaces"]),
            severities=json.loads(row["severities"]),
        ),
        action=ActionTemplate(
            verb=row["verb"],
            target_kind=row["target_kind"],
            target_name=row["target_name"],
            namespace=row["namespace"],
            params=json.loads(row["params"]),
        ),
        risk=row["risk"],
        description=row["description"],
        runs=row["runs"],
        successes=row["successes"],
        recent=row["recent"],
        created_by=row["created_by"],
        created_at=req_ts(row["created_at"]),
    )


class PlaybookRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, playbook: Playbook) -> Playbook | None:
        """Insert; None when a playbook with that name exists already."""
        async with self.db.write() as conn:
            rows = await conn.execute_fetchall(
                f"INSERT INTO playbooks ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
                " ON CONFLICT(name) DO NOTHING RETURNING id",
                _row_values(playbook),
            )
            if not rows:
                return None
            new_id = next(iter(rows))[0]
        return playbook.model_copy(update={"id": new_id})

    async def upsert_many(self, playbooks: Sequence[Playbook]) -> int:
        """Create or replace by name, all in one transaction (an import is all or nothing)."""
        updates = ", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in _COLUMNS.split(",")[1:])
        async with self.db.write() as conn:
            for pb in playbooks:
                await conn.execute(
                    f"INSERT INTO playbooks ({_COLUMNS}) VALUES ({_PLACEHOLDERS})"
                    f" ON CONFLICT(name) DO UPDATE SET {updates}",
                    _row_values(pb),
                )
        return len(playbooks)

    async def get(self, playbook_id: int) -> Playbook | None:
        return await self._one("SELECT * FROM playbooks WHERE id = ?", playbook_id)

    async def get_by_name(self, name: str) -> Playbook | None:
        return await self._one("SELECT * FROM playbooks WHERE name = ?", name)

    async def list_all(self) -> list[Playbook]:
        async with (
            self.db.read() as conn,
            conn.execute("SELECT * FROM playbooks ORDER BY name") as cur,
        ):
            return [_playbook(row) for row in await cur.fetchall()]

    async def delete(self, playbook_id: int) -> bool:
        async with self.db.write() as conn:
            cur = await conn.execute("DELETE FROM playbooks WHERE id = ?", (playbook_id,))
            return cur.rowcount == 1

    async def record_execution(
        self, playbook_id: int, success: bool, dry_run: bool
    ) -> Playbook | None:
        """Count one real execution; dry runs prove nothing and are ignored."""
        if not dry_run:
            async with self.db.write() as conn:
                await conn.execute(
                    "UPDATE playbooks SET runs = runs + 1, successes = successes + ?,"
                    " recent = substr(recent || ?, ?) WHERE id = ?",
                    (int(success), "S" if success else "F", -RECENT_KEPT, playbook_id),
                )
        return await self.get(playbook_id)

    async def _one(self, sql: str, *args: Any) -> Playbook | None:
        async with self.db.read() as conn, conn.execute(sql, args) as cur:
            row = await cur.fetchone()
        return _playbook(row) if row else None
