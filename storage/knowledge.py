"""The knowledge index: past incidents and runbook sections (table `knowledge`).

`search` is the one entry point for retrieval, so another backend (PostgreSQL
full-text search with tsvector/ts_rank, pgvector) replaces this one function.
SQLite: FTS5 with BM25 ranking over title and body, plus cosine similarity over
stored embeddings when a query vector is given; the two rankings are fused by
reciprocal rank. Vectors are compared in Python, which is fine for the few thousand
documents a team has; a vector extension would take over beyond that.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from storage.db import dialect

Conn = aiosqlite.Connection

TITLE_WEIGHT = 3.0  # a term in the title says more than one in the body
BODY_WEIGHT = 1.0
FTS_CANDIDATES = 30
RRF_K = 60  # reciprocal rank fusion constant (the usual choice)


@dataclass(frozen=True)
class KnowledgeDoc:
    kind: str  # "incident" | "runbook"
    ref: str
    title: str
    body: str
    outcome: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Hit:
    doc: KnowledgeDoc
    bm25: float | None  # FTS5 bm25(): lower is better; None when only the vector matched
    cosine: float | None  # None without embeddings


def _ts(value: datetime) -> str:
    return value.isoformat()


async def _one(conn: Conn, sql: str, args: Sequence[Any] = ()) -> aiosqlite.Row | None:
    async with conn.execute(sql, args) as cur:
        return await cur.fetchone()


async def _all(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[aiosqlite.Row]:
    async with conn.execute(sql, args) as cur:
        return list(await cur.fetchall())


def _doc(row: aiosqlite.Row) -> KnowledgeDoc:
    return KnowledgeDoc(row["kind"], row["ref"], row["title"], row["body"], row["outcome"],
                        row["detail"])


# ---------------------------------------------------------------- writing


async def upsert(conn: Conn, doc: KnowledgeDoc, now: datetime) -> bool:
    """Insert or update one document; False when it was already stored as is."""
    row = await _one(conn, "SELECT * FROM knowledge WHERE ref = ?", (doc.ref,))
    if row is not None and _doc(row) == doc:
        return False
    if row is None:
        new = await _one(
            conn,
            """INSERT INTO knowledge (kind, ref, title, body, outcome, detail, updated_at)
               VALUES (?,?,?,?,?,?,?) RETURNING id""",
            (doc.kind, doc.ref, doc.title, doc.body, doc.outcome, doc.detail, _ts(now)),
        )
        assert new is not None
        doc_id = new[0]
    else:
        doc_id = row["id"]
        await conn.execute(
            """UPDATE knowledge SET kind=?, title=?, body=?, outcome=?, detail=?, updated_at=?,
                      embedding=NULL, embedding_model=NULL WHERE id=?""",
            (doc.kind, doc.title, doc.body, doc.outcome, doc.detail, _ts(now), doc_id),
        )
        await conn.execute("DELETE FROM knowledge_fts WHERE rowid = ?", (doc_id,))
    await conn.execute(
        "INSERT INTO knowledge_fts (rowid, title, body) VALUES (?,?,?)",
        (doc_id, doc.title, doc.body),
    )
    return True


async def remove_kind_except(conn: Conn, kind: str, keep: Sequence[str]) -> int:
    """Delete documents of `kind` whose ref is not in `keep` (runbooks that went away)."""
    rows = await _all(conn, "SELECT id, ref FROM knowledge WHERE kind = ?", (kind,))
    gone = [r["id"] for r in rows if r["ref"] not in set(keep)]
    for doc_id in gone:
        await conn.execute("DELETE FROM knowledge_fts WHERE rowid = ?", (doc_id,))
        await conn.execute("DELETE FROM knowledge WHERE id = ?", (doc_id,))
    return len(gone)


async def clear(conn: Conn) -> None:
    await conn.execute("DELETE FROM knowledge_fts")
    await conn.execute("DELETE FROM knowledge")
    await conn.execute("DELETE FROM meta WHERE key LIKE 'kb:%'")


async def get_mark(conn: Conn, name: str) -> str | None:
    row = await _one(conn, "SELECT value FROM meta WHERE key = ?", (f"kb:{name}",))
    return row["value"] if row else None


async def set_mark(conn: Conn, name: str, value: str) -> None:
    await conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (f"kb:{name}", value),
    )


async def count(conn: Conn) -> dict[str, int]:
    rows = await _all(conn, "SELECT kind, COUNT(*) AS n FROM knowledge GROUP BY kind")
    return {r["kind"]: r["n"] for r in rows}


# ---------------------------------------------------------------- embeddings


async def missing_embeddings(conn: Conn, model: str, limit: int) -> list[tuple[int, str]]:
    rows = await _all(
        conn,
        """SELECT id, title, body FROM knowledge
           WHERE embedding IS NULL OR embedding_model IS NULL OR embedding_model <> ?
           ORDER BY id LIMIT ?""",
        (model, limit),
    )
    return [(r["id"], f"{r['title']}\n{r['body']}") for r in rows]


async def set_embedding(conn: Conn, doc_id: int, vector: Sequence[float], model: str) -> None:
    await conn.execute(
        "UPDATE knowledge SET embedding = ?, embedding_model = ? WHERE id = ?",
        (json.dumps([round(float(x), 6) for x in vector]), model, doc_id),
    )


# ---------------------------------------------------------------- past incidents


async def changed_incidents(conn: Conn, mark: str, limit: int) -> list[tuple[str, str]]:
    """(incident id, newest change) of incidents changed after `mark`, oldest change first."""
    rows = await _all(
        conn,
        """SELECT id, MAX(changed) AS changed FROM (
               SELECT id, updated_at AS changed FROM incidents WHERE updated_at > ?
               UNION ALL
               SELECT incident_id, updated_at FROM decisions WHERE updated_at > ?
           ) AS changes GROUP BY id ORDER BY changed, id LIMIT ?""",
        (mark, mark, limit),
    )
    return [(r["id"], r["changed"]) for r in rows]


@dataclass(frozen=True)
class IncidentFacts:
    incident: dict[str, Any]  # the incidents row (group_labels decoded)
    labels: dict[str, str]  # labels every alert of the incident shares
    annotations: dict[str, str]
    decision: dict[str, Any] | None  # the last decision (proposal/result decoded)
    notes: list[str]  # thread notes sent for the incident (text), oldest first


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    return {k: v for k, v in maps[0].items() if all(m.get(k) == v for m in maps[1:])}


async def incident_facts(conn: Conn, incident_id: str, max_notes: int = 10) -> IncidentFacts | None:
    row = await _one(conn, "SELECT * FROM incidents WHERE id = ?", (incident_id,))
    if row is None:
        return None
    incident = dict(row)
    incident["group_labels"] = json.loads(incident["group_labels"] or "{}")
    alerts = await _all(
        conn, "SELECT labels, annotations FROM alerts WHERE incident_id = ? LIMIT 50",
        (incident_id,),
    )
    labels = _common([json.loads(a["labels"]) for a in alerts])
    annotations = _common([json.loads(a["annotations"]) for a in alerts])
    drow = await _one(
        conn, "SELECT * FROM decisions WHERE incident_id = ? ORDER BY id DESC LIMIT 1",
        (incident_id,),
    )
    decision = None
    if drow is not None:
        decision = dict(drow)
        decision["proposal"] = json.loads(drow["proposal"]) if drow["proposal"] else None
        decision["result"] = json.loads(drow["result"]) if drow["result"] else None
    note_rows = await _all(
        conn,
        """SELECT payload FROM outbox WHERE incident_id = ? AND kind = 'reply'
           ORDER BY id DESC LIMIT ?""",
        (incident_id, max_notes),
    )
    notes = [str(json.loads(r["payload"]).get("text", "")) for r in reversed(note_rows)]
    return IncidentFacts(incident, labels, annotations, decision, notes)


# ---------------------------------------------------------------- retrieval


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of the terms, each quoted (no operators get through)."""
    quoted = ['"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms) if t.strip()]
    return " OR ".join(quoted)


async def _pg_text_search(conn: Conn, terms: Sequence[str]) -> list[tuple[int, float]]:
    """PostgreSQL's text search in place of FTS5: any of the terms (each through
    plainto_tsquery, so no operator gets through), ranked with the title weighted as in
    bm25 above; the score is negated so that lower is better, as bm25's is."""
    unique = [t for t in dict.fromkeys(terms) if t.strip()]
    if not unique:
        return []
    query = " || ".join(["plainto_tsquery('simple', ?)"] * len(unique))
    weights = f"'{{0, 0, {BODY_WEIGHT / TITLE_WEIGHT}, 1}}'"
    rows = await _all(
        conn,
        f"""SELECT rowid, -ts_rank({weights}, tsv, q) AS score
            FROM knowledge_fts, ({"SELECT " + query} AS q) AS terms
            WHERE tsv @@ q ORDER BY score, rowid LIMIT ?""",
        (*unique, FTS_CANDIDATES + 1),
    )
    return [(r["rowid"], r["score"]) for r in rows]


async def search(
    conn: Conn,
    terms: Sequence[str],
    *,
    limit: int,
    exclude_ref: str | None = None,
    vector: Sequence[float] | None = None,
    model: str | None = None,
) -> list[Hit]:
    """The best `limit` documents for `terms` (and `vector`), best first."""
    fts: list[tuple[int, float]] = []
    if terms and dialect(conn) == "postgresql":
        fts = await _pg_text_search(conn, terms)
    elif terms:
        rows = await _all(
            conn,
            f"""SELECT rowid, bm25(knowledge_fts, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS score
                FROM knowledge_fts WHERE knowledge_fts MATCH ? ORDER BY score LIMIT ?""",
            (fts_query(terms), FTS_CANDIDATES + 1),
        )
        fts = [(r["rowid"], r["score"]) for r in rows]
    cosines: dict[int, float] = {}
    if vector is not None and model:
        for r in await _all(
            conn, "SELECT id, embedding FROM knowledge WHERE embedding_model = ?", (model,)
        ):
            cosines[r["id"]] = _cosine(vector, json.loads(r["embedding"]))
    fused: dict[int, float] = {}
    for rank, (doc_id, _) in enumerate(fts):
        fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (RRF_K + rank)
    by_cosine = sorted(cosines.items(), key=lambda kv: -kv[1])[:FTS_CANDIDATES]
    for rank, (doc_id, _) in enumerate(by_cosine):
        fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (RRF_K + rank)
    bm25 = dict(fts)
    order = sorted(fused, key=lambda d: (-fused[d], bm25.get(d, 0.0), d))
    hits: list[Hit] = []
    for doc_id in order:
        row = await _one(conn, "SELECT * FROM knowledge WHERE id = ?", (doc_id,))
        if row is None or row["ref"] == exclude_ref:
            continue
        hits.append(Hit(_doc(row), bm25.get(doc_id), cosines.get(doc_id)))
        if len(hits) >= limit:
            break
    return hits
