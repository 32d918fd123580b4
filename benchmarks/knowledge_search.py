"""What one knowledge search costs as the index grows: the same lookup (a new crash-looping
pod) over 1,000, 10,000 and 30,000 past incidents of an alert storm, which share the alert
name, the namespace, the deployments and most labels; one old incident shares the new
one's pod and instance, and a runbook section (indexed first, so the oldest rowid) its
OOMKilled.

    ./dev bench knowledge_search [--sizes 1000,10000,30000] [--runs 21] [--postgres URL]

Before and after in the same run, on the same index: "before" is the search as it was
(the whole query ranked by bm25 over every document, knowledge_fts), "after" storage's
search (the whole query ranked over the recent table, the rare terms over everything).
Median times of --runs lookups each, interleaved, and their ratio; SQLite VM steps of
one lookup (counted by a progress handler); where the old incident and the runbook rank.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bot.decisions.knowledge import incident_doc, indexable, query_text, runbook_sections, terms
from bot.decisions.redact import Redactor
from bot.models import Alert, AlertStatus, Incident, IncidentStatus
from storage import knowledge as kb
from storage.backends import database_for
from storage.db import Database, dialect

SIZES = (1000, 10000, 30000)
BATCH = 200  # incidents indexed per write, as Knowledge's refresh does
ALERTNAMES = ["KubePodCrashLooping"] * 6 + ["HighErrorRate", "KubeContainerOOMKilled"]
SERVICES = ["cart", "checkout", "payments", "catalog"]
NAMESPACES = ["shop", "shop-canary"]
OLD_REF = "INC-OLDPOD"  # the old incident with the new one's pod and instance
RUNBOOK_REF = "crash-loops.md#oomkilled"
POD = "checkout-7f9c4d-x2q8z"
INSTANCE = "10.42.7.193:8080"
RUNBOOKS = {
    "crash-loops.md": "# Crash loops\n\nGeneral advice.\n\n## OOMKilled\n\nRaise the memory "
                      "limit; a restart will not help an OOMKilled container.\n\n"
                      "## Bad config\n\nRoll back the config map change.\n",
    "latency.md": "# Latency\n\n## Scaling\n\nScale up when latency is high.\n",
    "disks.md": "# Disks\n\n## Full volume\n\nGrow the PVC.\n",
}


def facts(i: int, rng: random.Random, *, pod: str | None = None,
          instance: str | None = None) -> kb.IncidentFacts:
    """Incident i of the storm: a random pod of one of a few deployments."""
    alertname = rng.choice(ALERTNAMES)
    service = rng.choice(SERVICES)
    namespace = rng.choice(NAMESPACES)
    pod = pod or f"{service}-{rng.randrange(16**6):06x}-{rng.randrange(36**5):05d}"
    instance = instance or f"10.42.{rng.randrange(256)}.{rng.randrange(256)}:8080"
    inc = {"id": f"INC-{i:07d}", "title": f"Pod {namespace}/{pod} is crash looping",
           "alertname": alertname, "severity": "critical", "namespace": namespace,
           "target": pod, "status": "resolved",
           "resolved_at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00",
           "group_labels": {"alertname": alertname, "namespace": namespace}}
    labels = {"alertname": alertname, "namespace": namespace, "deployment": service,
              "pod": pod, "instance": instance, "severity": "critical",
              "job": "kube-state-metrics", "cluster": "prod-eu-1"}
    annotations = {"summary": f"Pod {namespace}/{pod} is crash looping",
                   "description": f"Container {service} restarted {rng.randrange(40)} times"}
    decision = {
        "state": rng.choice(["succeeded", "rejected", "expired"]),
        "proposal": {"action": {"verb": "rollout_restart", "target_kind": "deployment",
                                "target_name": service, "namespace": namespace},
                     "risk": "medium", "source": "rule", "source_name": "crashloop",
                     "summary": f"restart {service}", "reasoning": f"{alertname} on {service}"},
        "result": {}, "decided_by": "@alice", "reason": None, "invalid_reason": None}
    return kb.IncidentFacts(inc, labels, annotations, decision, [])


def storm_docs(start: int, stop: int, seed: int = 7) -> Iterator[kb.KnowledgeDoc]:
    """Storm incidents start..stop-1 (the same ones whatever the range is cut into); the
    fifth is the old incident with the new one's pod and instance."""
    redactor = Redactor()
    for i in range(start, stop):
        rng = random.Random(seed * 1_000_003 + i)
        if i == 4:
            found = facts(i, rng, pod=POD, instance=INSTANCE)
            found = replace(found, incident={**found.incident, "id": OLD_REF})
            yield indexable(incident_doc(found), redactor)
        else:
            yield indexable(incident_doc(facts(i, rng)), redactor)


def new_incident() -> tuple[Incident, list[Alert]]:
    """The new incident: a crash-looping checkout pod, OOMKilled."""
    labels = {"alertname": "KubePodCrashLooping", "namespace": "shop", "deployment": "checkout",
              "pod": POD, "instance": INSTANCE, "severity": "critical",
              "job": "kube-state-metrics", "cluster": "prod-eu-1"}
    at = datetime.fromisoformat("2026-12-02T00:00:00+00:00")
    alert = Alert(fingerprint="f-new", status=AlertStatus.FIRING, labels=labels,
                  annotations={"summary": f"Pod shop/{POD} is crash looping",
                               "description": "Container checkout OOMKilled, restarted 12 times"},
                  starts_at=at)
    incident = Incident(
        id="INC-NEW0001", group_key="new", title=f"Pod shop/{POD} is crash looping",
        group_labels={"alertname": "KubePodCrashLooping", "namespace": "shop"},
        alertname="KubePodCrashLooping", severity="critical", target="checkout",
        namespace="shop", status=IncidentStatus.FIRING, firing_count=1, resolved_count=0,
        opened_at=at, updated_at=at, chat_id=-100)
    return incident, [alert]


def query_terms() -> list[str]:
    """The new incident's search terms, as Knowledge.related builds them."""
    return terms(query_text(*new_incident()))


async def grow(db: Database, start: int, stop: int) -> None:
    """Index storm incidents start..stop-1 (runbooks first, when the index is empty)."""
    now = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
    redactor = Redactor()
    if start == 0:
        async with db.write() as conn:
            for rel, text in RUNBOOKS.items():
                for doc in runbook_sections(rel, text):
                    await kb.upsert(conn, indexable(doc, redactor), now)
    docs = list(storm_docs(start, stop))
    for first in range(0, len(docs), BATCH):
        async with db.write() as conn:
            for doc in docs[first:first + BATCH]:
                await kb.upsert(conn, doc, now)
            await kb.trim_recent(conn)


@asynccontextmanager
async def index_of(size: int) -> AsyncIterator[Database]:
    """A fresh database whose knowledge index holds the runbooks and `size` incidents."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(Path(tmp) / "kb.db")
        await db.open()
        try:
            await grow(db, 0, size)
            yield db
        finally:
            await db.close()


async def _ranked_over_everything(conn: kb.Conn,
                                  words: Sequence[str]) -> list[tuple[int, float]]:
    """The search as it was: the whole query ranked over knowledge_fts (bm25; ts_rank on
    PostgreSQL)."""
    if dialect(conn) == "postgresql":
        unique = list(dict.fromkeys(words))
        query = " || ".join(["plainto_tsquery('simple', ?)"] * len(unique))
        weights = f"'{{0, 0, {kb.BODY_WEIGHT / kb.TITLE_WEIGHT}, 1}}'"
        sql = f"""SELECT rowid, -ts_rank({weights}, tsv, q) AS score
                  FROM knowledge_fts, (SELECT {query} AS q) AS terms
                  WHERE tsv @@ q ORDER BY score, rowid LIMIT ?"""
        args: tuple[Any, ...] = (*unique, kb.FTS_CANDIDATES + 1)
    else:
        sql = f"""SELECT rowid, bm25(knowledge_fts, {kb.TITLE_WEIGHT}, {kb.BODY_WEIGHT}) AS score
                  FROM knowledge_fts WHERE knowledge_fts MATCH ? ORDER BY score LIMIT ?"""
        args = (kb.fts_query(words), kb.FTS_CANDIDATES + 1)
    async with conn.execute(sql, args) as cur:
        return [(r[0], r[1]) for r in await cur.fetchall()]


@contextmanager
def as_before() -> Iterator[None]:
    """storage's search with its text search as it was."""
    original = kb._text_search
    kb._text_search = _ranked_over_everything  # type: ignore[assignment]
    try:
        yield
    finally:
        kb._text_search = original  # type: ignore[assignment]


async def search(db: Database, words: Sequence[str]) -> list[kb.Hit]:
    async with db.read(slow=True) as conn:
        return await kb.search(conn, words, limit=9)


async def steps_of(db: Database, words: Sequence[str]) -> tuple[int, list[kb.Hit]]:
    """SQLite VM steps of one search on the slow reader (0 on PostgreSQL), and its hits."""
    if db.dialect != "sqlite":
        return 0, await search(db, words)
    conn = db._require(db._slow_reader)
    counted = 0

    def step() -> int:
        nonlocal counted
        counted += 1
        return 0  # 0: go on

    await conn.set_progress_handler(step, 1)
    try:
        hits = await search(db, words)
    finally:
        await conn.set_progress_handler(None, 1)  # type: ignore[arg-type]  # None removes it
    return counted, hits


def rank_of(hits: Sequence[kb.Hit], ref: str) -> str:
    refs = [h.doc.ref for h in hits]
    return str(refs.index(ref) + 1) if ref in refs else "-"


async def main() -> None:
    parser = argparse.ArgumentParser(prog="./dev bench knowledge_search")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--postgres", metavar="URL",
                        help="on this PostgreSQL database (an empty schema: the index is built "
                             "there), VACUUM ANALYZE after each growth, as autovacuum would; "
                             "no VM steps")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    words = query_terms()
    print(f"one lookup ({len(words)} terms), median of {args.runs} runs each; rank = place "
          f"of the old incident with the same pod / the OOMKilled runbook in the top 9")
    print(f"{'incidents':>9} {'before ms':>9} {'after ms':>8} {'after/before':>12} "
          f"{'steps before':>12} {'steps after':>11} {'rank before':>11} {'rank after':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        db = database_for(args.postgres or Path(tmp) / "kb.db")
        await db.open()
        try:
            have = 0
            for size in sizes:
                await grow(db, have, size)
                have = size
                if args.postgres:
                    # Without statistics PostgreSQL plans a rare word's lookup as a read of
                    # the whole table (before and after alike).
                    pg = await asyncpg.connect(args.postgres)
                    await pg.execute("VACUUM ANALYZE")
                    await pg.close()
                await search(db, words)  # warm the page cache for both
                before: list[float] = []
                after: list[float] = []
                for _ in range(args.runs):
                    for times, old in ((before, True), (after, False)):
                        t0 = time.perf_counter()
                        if old:
                            with as_before():
                                await search(db, words)
                        else:
                            await search(db, words)
                        times.append((time.perf_counter() - t0) * 1000)
                with as_before():
                    steps_before, hits_before = await steps_of(db, words)
                steps_after, hits_after = await steps_of(db, words)
                b, a = statistics.median(before), statistics.median(after)
                ranks: list[Any] = [
                    f"{rank_of(h, OLD_REF)} / {rank_of(h, RUNBOOK_REF)}"
                    for h in (hits_before, hits_after)]
                print(f"{size:>9} {b:>9.2f} {a:>8.2f} {a / b:>12.3f} {steps_before:>12} "
                      f"{steps_after:>11} {ranks[0]:>11} {ranks[1]:>10}")
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
