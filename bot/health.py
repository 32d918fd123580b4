"""What /healthz and /metrics report, read from what they measure: the outbox table, the
counters delivery keeps of its Telegram writes, and the counters of alert intake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage import outbox
from storage.db import Database


async def health(db: Database) -> dict[str, Any]:
    async with db.read() as conn:
        counts = await outbox.counts(conn)
    return {"status": "ok", "outbox": counts}


async def metrics_text(db: Database, *, intake: Mapping[str, int],
                       delivery: Mapping[str, int]) -> str:
    """Prometheus text format: opsgate_<name>_total per intake counter,
    opsgate_delivery_total{result=...} and opsgate_outbox_rows{state=...}."""
    lines = [f"opsgate_{name}_total {value}" for name, value in sorted(intake.items())]
    lines += [f'opsgate_delivery_total{{result="{name}"}} {value}'
              for name, value in sorted(delivery.items())]
    async with db.read() as conn:
        for state, count in sorted((await outbox.counts(conn)).items()):
            lines.append(f'opsgate_outbox_rows{{state="{state}"}} {count}')
    return "\n".join(lines) + "\n"
