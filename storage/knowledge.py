"""The knowledge index: past incidents and runbook sections (table `knowledge`).

`search` is the one entry point for retrieval, so another backend (PostgreSQL
full-text search with tsvector/ts_rank, pgvector) replaces this one function.
SQLite: FTS5 with BM25 ranking over title and body, plus cosine similarity over
stored embeddings when a query vector is given; the two rankings are fused by
reciprocal rank.

A search costs the same however many incidents the index holds. Ranking reads every
document that matches (and bm25 walks every matching document of the table to weigh a
term), and in an alert storm thousands of incidents share the alert name, the namespace
and most labels. So documents are kept twice: `knowledge_fts` holds all of them,
`knowledge_recent_fts` every runbook section and the newest RECENT_INCIDENTS incidents.
The whole query is ranked in the recent table; over the whole index only the query's rare
terms (in at most RARE_DOCS documents, counted with a LIMIT so a common term costs no more
than a rare one) are searched: an old incident sharing a pod, an instance or a service
seen rarely is still found, an old one sharing only what every storm shares is not.
Vectors are compared in Python for the same bounded set: the recent table's documents
and the text hits.
"""

from __future__ import annotations

import json
import math
import re
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
RECENT_INCIDENTS = 200  # incident documents in knowledge_recent_fts (as migration 015 fills it)
RARE_DOCS = 50  # a term in at most this many documents is searched over the whole index
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
    recent = doc.kind != "incident" or row is None  # an old incident stays old when updated
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
        cur = await conn.execute("DELETE FROM knowledge_recent_fts WHERE rowid = ?", (doc_id,))
        recent = recent or cur.rowcount > 0
    for table in ("knowledge_fts", "knowledge_recent_fts") if recent else ("knowledge_fts",):
        await conn.execute(
            f"INSERT INTO {table} (rowid, title, body) VALUES (?,?,?)",
            (doc_id, doc.title, doc.body),
        )
    return True


async def trim_recent(conn: Conn) -> None:
    """Incidents older than the newest RECENT_INCIDENTS leave the recent table (runbook
    sections stay whatever their age). Reads the recent table's rows up to the edge only."""
    edge = await _one(
        conn,
        "SELECT id FROM knowledge WHERE kind = 'incident' ORDER BY id DESC LIMIT 1 OFFSET ?",
        (RECENT_INCIDENTS,),
    )
    if edge is None:
        return
    cur = await conn.execute(
        """DELETE FROM knowledge_recent_fts WHERE rowid <= ? AND EXISTS (
               SELECT 1 FROM knowledge WHERE knowledge.id = knowledge_recent_fts.rowid
                                        AND knowledge.kind = 'incident')""",
        (edge["id"],),
    )
    if cur.rowcount > 0 and dialect(conn) == "sqlite":
        # FTS5 keeps a deleted document's entries (and a tombstone) until its segment is
        # merged, which for the largest segment is rare: the table would grow with every
        # incident ever indexed. Rewritten whole, it is the size of what it holds.
        await conn.execute(
            "INSERT INTO knowledge_recent_fts (knowledge_recent_fts) VALUES ('optimize')")


async def delete_docs(conn: Conn, doc_ids: Sequence[int]) -> int:
    """Delete documents by id from the index; how many there were."""
    if not doc_ids:
        return 0
    marks = ",".join("?" * len(doc_ids))
    for table in ("knowledge_fts", "knowledge_recent_fts"):
        await conn.execute(f"DELETE FROM {table} WHERE rowid IN ({marks})", tuple(doc_ids))
    cur = await conn.execute(f"DELETE FROM knowledge WHERE id IN ({marks})", tuple(doc_ids))
    return max(cur.rowcount, 0)


async def remove_kind_except(conn: Conn, kind: str, keep: Sequence[str]) -> int:
    """Delete documents of `kind` whose ref is not in `keep` (runbooks that went away)."""
    rows = await _all(conn, "SELECT id, ref FROM knowledge WHERE kind = ?", (kind,))
    gone = [r["id"] for r in rows if r["ref"] not in set(keep)]
    await delete_docs(conn, gone)
    return len(gone)


async def clear(conn: Conn) -> None:
    await conn.execute("DELETE FROM knowledge_fts")
    await conn.execute("DELETE FROM knowledge_recent_fts")
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


# A token as unicode61 and PostgreSQL's 'simple' parser cut words: a quoted term the
# tokenizer splits ("pod-77") would be a phrase, whose match walks both words' doclists.
_TOKEN = re.compile(r"[^\W_]+")


def tokens(terms: Sequence[str]) -> list[str]:
    """The terms as single tokens, lowercased, each once, in order."""
    return list(dict.fromkeys(t.lower() for term in terms for t in _TOKEN.findall(term)))


async def _documents_with(conn: Conn, words: Sequence[str]) -> dict[str, int]:
    """How many documents of the whole index hold each word, counted up to RARE_DOCS + 1
    (a LIMIT stops each count, so a word every incident has costs what a rare one does)."""
    found: dict[str, int] = {}
    # A few per statement: SQLite caps a compound SELECT at 500 terms.
    for start in range(0, len(words), 100):
        part = words[start:start + 100]
        args: list[Any] = []
        counts = []
        for i, word in enumerate(part):
            if dialect(conn) == "postgresql":
                where = f"tsv @@ {_pg_query([word])}"
            else:
                where, args = "knowledge_fts MATCH ?", [*args, fts_query([word])]
            counts.append(f"SELECT {i} AS i, (SELECT COUNT(*) FROM (SELECT 1 FROM knowledge_fts "
                          f"WHERE {where} LIMIT {RARE_DOCS + 1}) AS m) AS n")
        for r in await _all(conn, " UNION ALL ".join(counts), args):
            found[part[r["i"]]] = r["n"]
    return found


def _pg_query(words: Sequence[str]) -> str:
    """A tsquery for any of `words`, written out: as parameters, PostgreSQL would soon plan
    the statement once for every word, the same plan for one every document holds (read
    the table in order, stop at the LIMIT) and for one a single document holds (the GIN
    index), and read the whole table for the latter. A token is letters and digits only."""
    assert all(_TOKEN.fullmatch(w) for w in words), words
    return "(" + " || ".join(f"plainto_tsquery('simple', '{w}')" for w in words) + ")"


# A text hit: (document id, score, order); lower is better for both, hits go by order.
_Found = tuple[int, float, float]


async def _sqlite_text_search(conn: Conn, table: str, words: Sequence[str],
                              present: Sequence[str], rare: Sequence[str]) -> list[_Found]:
    """FTS5: documents with any of `words`, by bm25 over those words (its weight of a word
    falls with the share of documents holding it, so rare words lead already)."""
    del present, rare
    rows = await _all(
        conn,
        f"""SELECT rowid, bm25({table}, {TITLE_WEIGHT}, {BODY_WEIGHT}) AS score
            FROM {table} WHERE {table} MATCH ? ORDER BY score LIMIT ?""",
        (fts_query(words), FTS_CANDIDATES + 1),
    )
    return [(r["rowid"], r["score"], r["score"]) for r in rows]


async def _pg_text_search(conn: Conn, table: str, words: Sequence[str],
                          present: Sequence[str], rare: Sequence[str]) -> list[_Found]:
    """PostgreSQL's text search in place of FTS5: documents with any of `words`, scored
    by ts_rank over all the query's words (it weighs a document alone, so any set of
    documents may be ranked), the title weighted as in bm25 above, negated so that lower
    is better as bm25's is. ts_rank knows nothing of how rare a word is: the hits go by
    their rank over the rare words first (the same order as the score when every word is
    rare, as in a small index)."""
    weights = f"'{{0, 0, {BODY_WEIGHT / TITLE_WEIGHT}, 1}}'"
    order = f"-ts_rank({weights}, tsv, {_pg_query(rare)})" if rare else "0"
    rows = await _all(
        conn,
        f"""SELECT rowid, -ts_rank({weights}, tsv, {_pg_query(present)}) AS score,
                   {order} AS priority
            FROM {table} WHERE tsv @@ {_pg_query(words)}
            ORDER BY priority, score, rowid LIMIT {FTS_CANDIDATES + 1}""",
    )
    return [(r["rowid"], r["score"], r["priority"]) for r in rows]


async def _text_search(conn: Conn, terms: Sequence[str]) -> list[tuple[int, float]]:
    """(document id, score: lower is better), best first: the whole query over the recent
    table, its rare words over the whole index; a document found by both keeps its better
    place."""
    words = tokens(terms)
    if not words:
        return []
    held = await _documents_with(conn, words)
    present = [w for w in words if held.get(w)]
    rare = [w for w in present if held[w] <= RARE_DOCS]
    search = _pg_text_search if dialect(conn) == "postgresql" else _sqlite_text_search
    best: dict[int, tuple[float, float]] = {}
    for table, searched in (("knowledge_recent_fts", present), ("knowledge_fts", rare)):
        if not searched:
            continue
        for doc_id, score, order in await search(conn, table, searched, present, rare):
            best[doc_id] = min((order, score), best.get(doc_id, (order, score)))
    # Ties go to the newer document.
    ranked = sorted(best.items(), key=lambda kv: (kv[1], -kv[0]))[:FTS_CANDIDATES + 1]
    return [(doc_id, score) for doc_id, (_, score) in ranked]


async def _cosines(conn: Conn, vector: Sequence[float], model: str,
                   also: Sequence[int]) -> dict[int, float]:
    """Similarity to `vector` of the recent table's documents and of `also`."""
    marks = ",".join("?" * len(also)) or "NULL"
    rows = await _all(
        conn,
        f"""SELECT id, embedding FROM knowledge WHERE embedding_model = ?
            AND (id IN (SELECT rowid FROM knowledge_recent_fts) OR id IN ({marks}))""",
        (model, *also),
    )
    return {r["id"]: _cosine(vector, json.loads(r["embedding"])) for r in rows}


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
    fts = await _text_search(conn, terms) if terms else []
    cosines: dict[int, float] = {}
    if vector is not None and model:
        cosines = await _cosines(conn, vector, model, [doc_id for doc_id, _ in fts])
    fused: dict[int, float] = {}
    for rank, (doc_id, _) in enumerate(fts):
        fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (RRF_K + rank)
    by_cosine = sorted(cosines.items(), key=lambda kv: -kv[1])[:FTS_CANDIDATES]
    for rank, (doc_id, _) in enumerate(by_cosine):
        fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (RRF_K + rank)
    bm25 = dict(fts)
    order = sorted(fused, key=lambda d: (-fused[d], bm25.get(d, 0.0), d))
    hits: list[Hit] = []
    # One statement for the documents (one may be the excluded one), not one per hit.
    for start in range(0, len(order), limit + 1):
        part = order[start:start + limit + 1]
        rows = await _all(
            conn,
            f"""SELECT id, kind, ref, title, body, outcome, detail FROM knowledge
                WHERE id IN ({",".join("?" * len(part))})""",
            part,
        )
        found = {r["id"]: r for r in rows}
        for doc_id in part:
            row = found.get(doc_id)
            if row is None or row["ref"] == exclude_ref:
                continue
            hits.append(Hit(_doc(row), bm25.get(doc_id), cosines.get(doc_id)))
            if len(hits) >= limit:
                return hits
    return hits
