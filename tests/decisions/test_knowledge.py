"""The knowledge index on a real SQLite file: ranking, incremental refresh, budget."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from fake_llm import fake_llm_server
from helpers import T0, alert, incident_for
from pg import database_env

from bot.decisions.knowledge import Embedder, Knowledge, runbook_sections, terms
from bot.decisions.redact import Redactor
from bot.models import (
    Action,
    Alert,
    DecisionState,
    Incident,
    IncidentStatus,
    Proposal,
    ProposalSource,
    Risk,
    Verb,
)
from storage import knowledge as kb
from storage import repo
from storage.db import Database
from storage.transitions import compare_and_set

ROOT = Path(__file__).resolve().parent.parent.parent

SERVICES = ["cart", "checkout", "payments", "search", "auth", "catalog"]
NAMESPACES = ["shop", "payments", "shop-staging"]
KINDS = [
    ("KubePodCrashLooping", "is crash looping", Verb.ROLLOUT_RESTART),
    ("HighErrorRate", "returns 5xx", Verb.ROLLOUT_UNDO),
    ("HighLatency", "is slow", Verb.SCALE),
    ("CPUThrottlingHigh", "is CPU throttled", Verb.SCALE),
    ("KubeDiskFull", "is out of disk", None),
]

RIGHT = "INC-RIGHT1"


async def store_incident(
    db: Database, inc_id: str, alertname: str, service: str, namespace: str, text: str,
    *, state: DecisionState = DecisionState.SUCCEEDED, verb: Verb | None = None,
    reason: str | None = None, minutes: int = 0,
) -> None:
    labels = {"alertname": alertname, "deployment": service, "namespace": namespace,
              "severity": "warning"}
    a = alert(labels, {"summary": f"{service} {text}", "description": text},
              fingerprint=f"fp-{inc_id}")
    inc = incident_for([a], inc_id).model_copy(update={
        "title": f"{alertname} {service}", "status": IncidentStatus.RESOLVED,
        "opened_at": T0 + timedelta(minutes=minutes), "updated_at": T0 + timedelta(minutes=minutes),
        "resolved_at": T0 + timedelta(minutes=minutes + 5),
    })
    action = None
    if verb is not None:
        params: dict[str, int | str] = {"replicas": 4} if verb is Verb.SCALE else {}
        action = Action(verb=verb, target_name=service, namespace=namespace, params=params)
    proposal = Proposal(action=action, risk=Risk.MEDIUM, summary=f"fix {service}",
                        reasoning=f"{alertname} on {service}", source=ProposalSource.RULE,
                        source_name="r")
    now = inc.updated_at
    async with db.write() as conn:
        await repo.insert_incident(conn, inc)
        await repo.upsert_alert(conn, a, inc.id, now)
        decision_id = await repo.insert_decision(conn, inc.id, now)
        await compare_and_set(conn, decision_id, [DecisionState.ANALYZING], state, now,
                              proposal=proposal, reason=reason)


async def corpus(db: Database) -> None:
    """30 resolved incidents over 5 kinds x 6 services, plus near-duplicates of RIGHT."""
    n = 0
    for k, (alertname, text, verb) in enumerate(KINDS):
        for s, service in enumerate(SERVICES):
            n += 1
            await store_incident(db, f"INC-{n:06d}", alertname, service,
                                 NAMESPACES[(k + s) % 3], text, verb=verb, minutes=n)
    # Near-duplicates: same alert, other namespace; same namespace, other service.
    await store_incident(db, "INC-NEAR01", "KubePodCrashLooping", "checkout", "shop",
                         "is crash looping", verb=Verb.ROLLOUT_RESTART, minutes=40)
    await store_incident(db, "INC-NEAR02", "KubePodCrashLooping", "cart", "payments",
                         "OOMKilled after a config reload", verb=Verb.ROLLOUT_RESTART,
                         minutes=41)
    # The right one comes last, so insertion order does not favour it.
    await store_incident(db, RIGHT, "KubePodCrashLooping", "checkout", "payments",
                         "OOMKilled after a config reload", state=DecisionState.REJECTED,
                         verb=Verb.ROLLOUT_RESTART, reason="memory limit too low, not state",
                         minutes=42)


RUNBOOKS = {
    "crash-loops.md": "# Crash loops\n\nGeneral advice.\n\n## OOMKilled\n\nRaise the memory "
                      "limit; a restart will not help an OOMKilled checkout.\n\n## Bad config"
                      "\n\nRoll back the config map change.\n",
    "latency.md": "# Latency\n\n## Scaling\n\nScale up when latency is high.\n",
    "disks.md": "# Disks\n\n## Full volume\n\nGrow the PVC.\n",
    "errors.md": "# Error rate\n\n## After deploy\n\nRoll back the deploy.\n",
    "auth.md": "# Auth\n\n## Token expiry\n\nRotate the signing key.\n",
}


def new_incident() -> tuple[Incident, list[Alert]]:
    labels = {"alertname": "KubePodCrashLooping", "deployment": "checkout",
              "namespace": "payments", "severity": "critical", "pod": "checkout-7f9c-x2"}
    a = alert(labels, {"summary": "Pod payments/checkout-7f9c-x2 is crash looping",
                       "description": "Container OOMKilled after a config reload"})
    inc = incident_for([a], "INC-NEW001").model_copy(update={
        "title": "Pod payments/checkout-7f9c-x2 is crash looping"})
    return inc, [a]


def write_runbooks(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in RUNBOOKS.items():
        (folder / name).write_text(text)


async def test_the_right_past_incident_comes_first_where_like_would_not(
    db: Database, tmp_path: Path
) -> None:
    await corpus(db)
    write_runbooks(tmp_path / "kb")
    knowledge = Knowledge(db, str(tmp_path / "kb"), results=3)
    inc, alerts = new_incident()
    lookup = await knowledge.related(inc, alerts)
    assert lookup.note == ""
    assert [i.ref for i in lookup.items][:1] == [RIGHT]
    first = lookup.items[0]
    assert first.outcome == "rejected" and first.detail == "memory limit too low, not state"
    assert 0 < first.similarity <= 1
    assert len(lookup.items) == 3
    async with db.read() as conn:
        stored = await kb.count(conn)
        # A plain substring search for the alert name finds the oldest match, not the best.
        async with conn.execute(
            "SELECT ref FROM knowledge WHERE body LIKE ? ORDER BY id LIMIT 1",
            ("%KubePodCrashLooping%",),
        ) as cur:
            like_first = (await cur.fetchone())["ref"]
        # The whole title as a phrase finds nothing (the pod name differs every time).
        async with conn.execute(
            "SELECT COUNT(*) FROM knowledge WHERE body LIKE ?", (f"%{inc.title}%",)
        ) as cur:
            phrase_hits = (await cur.fetchone())[0]
    assert stored == {"incident": 33, "runbook": 7}
    assert like_first != RIGHT and phrase_hits == 0


async def test_runbook_sections_rank_by_content(db: Database, tmp_path: Path) -> None:
    write_runbooks(tmp_path / "kb")
    knowledge = Knowledge(db, str(tmp_path / "kb"), results=3)
    lookup = await knowledge.related(*new_incident())
    assert lookup.items[0].ref == "crash-loops.md#oomkilled"
    assert lookup.items[0].kind == "runbook"
    assert lookup.items[0].title == "Crash loops › OOMKilled"


async def test_refresh_is_incremental_and_follows_file_changes(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "kb"
    write_runbooks(folder)
    knowledge = Knowledge(db, str(folder))
    first = await knowledge.refresh()
    assert first == {"incidents": 0, "runbooks": 7, "embedded": 0}
    await store_incident(db, "INC-000001", "KubePodCrashLooping", "cart", "shop", "x",
                         verb=Verb.ROLLOUT_RESTART)
    assert await knowledge.refresh() == {"incidents": 1, "runbooks": 0, "embedded": 0}
    assert await knowledge.refresh() == {"incidents": 0, "runbooks": 0, "embedded": 0}
    (folder / "disks.md").unlink()
    (folder / "new.md").write_text("# New\n\n## One\n\ntext\n")
    assert (await knowledge.refresh())["runbooks"] == 1
    async with db.read() as conn:
        assert await kb.count(conn) == {"incident": 1, "runbook": 7}
    assert (await knowledge.reindex())["incidents"] == 1


async def test_embeddings_add_vector_similarity_and_are_redacted(
    db: Database, tmp_path: Path
) -> None:
    await corpus(db)
    await store_incident(db, "INC-SECRET", "KubePodCrashLooping", "auth", "shop",
                         "db url postgres://app:hunter2hunter2@db/app", verb=None, minutes=50)
    async with fake_llm_server() as fake:
        embedder = Embedder(fake.url, "embed-test", None, Redactor())
        knowledge = Knowledge(db, "", embedder=embedder, results=3)
        lookup = await knowledge.related(*new_incident())
        # Text and vector rankings are fused; the crude stand-in vectors still keep it near
        # the top, and the similarity shown is the cosine.
        assert RIGHT in [i.ref for i in lookup.items][:2]
        assert all(0.3 < i.similarity < 1 for i in lookup.items)
        assert fake.embedding_requests
        assert not any("hunter2hunter2" in raw for raw in fake.raw)
        assert any("[REDACTED]" in raw for raw in fake.raw)
    async with db.read() as conn:
        async with conn.execute("SELECT COUNT(*) FROM knowledge WHERE body LIKE ?",
                                ("%hunter2hunter2%",)) as cur:
            assert (await cur.fetchone())[0] == 0  # the index itself holds no secret


async def test_lookup_within_budget_says_so(db: Database) -> None:
    async with fake_llm_server() as fake:
        fake.hang = True
        embedder = Embedder(fake.url, "embed-test", None, Redactor())
        knowledge = Knowledge(db, "", embedder=embedder, timeout=0.3)
        started = asyncio.get_running_loop().time()
        lookup = await knowledge.related(*new_incident())
        took = asyncio.get_running_loop().time() - started
    assert lookup.items == [] and lookup.note == "timeout"
    assert took < 2


async def test_lookup_error_says_so(db: Database) -> None:
    async with fake_llm_server() as fake:
        fake.status = 500
        embedder = Embedder(fake.url, "embed-test", None, Redactor())
        lookup = await Knowledge(db, "", embedder=embedder).related(*new_incident())
    assert lookup.items == [] and lookup.note == "error"


def test_terms_split_names() -> None:
    assert terms("KubePodCrashLooping on cart-api") == [
        "kubepodcrashlooping", "kube", "pod", "crash", "looping", "cart", "api"]


def test_sections_keep_the_topic() -> None:
    docs = runbook_sections("a/b.md", "# Topic\n\nintro\n\n## One\n\nx\n\n## One\n\ny\n")
    assert [d.ref for d in docs] == ["a/b.md#top", "a/b.md#one", "a/b.md#one-1"]
    assert docs[1].title == "Topic › One"


def test_fts_query_quotes_everything() -> None:
    assert kb.fts_query(['a"b', "OR", "x"]) == '"a""b" OR "OR" OR "x"'


async def test_reindex_command(db: Database, tmp_path: Path) -> None:
    await store_incident(db, "INC-000001", "KubePodCrashLooping", "cart", "shop", "x",
                         verb=Verb.ROLLOUT_RESTART)
    write_runbooks(tmp_path / "kb")
    env = {**database_env(db.target), "KB_PATH": str(tmp_path / "kb"), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "kb", "reindex"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "indexed 1 incident(s) and 7 runbook section(s)" in proc.stdout
    bad = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "kb", "reindex"], cwd=tmp_path,
        env=env | {"KB_PATH": str(tmp_path / "nope")}, capture_output=True, text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "is not a folder" in bad.stderr
