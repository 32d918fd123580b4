"""Related knowledge for a new incident: similar past incidents and runbook sections.

The index (storage/knowledge.py) holds one document per past incident (title, labels,
what was proposed and decided, the outcome, rejection reasons, thread notes) and one
per section of each Markdown file under KB_PATH. It is kept current incrementally:
before each lookup, incidents changed since the last pass are (re)indexed and the
runbook folder is re-read only when a file changed. `reindex` rebuilds it all
(`python -m bot kb reindex`).

A lookup runs within a hard time budget; on timeout or error the caller gets no items
and a note saying why, and the analysis goes on without them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import texts
from bot.decisions.context import incident_annotations, incident_labels
from bot.decisions.redact import Redactor
from bot.decisions.wire import post_json
from bot.models import Alert, Incident, RelatedItem
from storage import knowledge as kb
from storage.db import Database

log = logging.getLogger(__name__)

INCIDENT_BATCH = 200  # incidents indexed per pass; the rest wait for the next lookup
EMBED_BATCH = 32  # documents embedded per pass
BODY_MAX = 6000  # characters of a document kept for the index
RELATIVE_FLOOR = 0.25  # a text hit must score at least this share of the best one
COSINE_FLOOR = 0.5  # a vector-only hit must be at least this similar

_WORD = re.compile(r"[A-Za-z0-9]+|[^\W\d_A-Za-z]+", re.UNICODE)
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP = frozenset(
    "a an and are as at be by for from has have in is it of on or the this to was were "
    "with not no".split()
)


def terms(text: str) -> list[str]:
    """Search terms: words, with CamelCase and snake/kebab names also split into parts
    (KubePodCrashLooping -> kubepodcrashlooping kube pod crash looping)."""
    out: list[str] = []
    for word in _WORD.findall(text):
        out.append(word.lower())
        parts = _CAMEL.findall(word)
        if len(parts) > 1:
            out.extend(p.lower() for p in parts)
    return [t for t in dict.fromkeys(out) if t not in _STOP and len(t) > 1]


def indexable(doc: kb.KnowledgeDoc, redactor: Redactor) -> kb.KnowledgeDoc:
    """The document as stored: secrets redacted (the index feeds model requests), then
    its split terms appended, so a part of a name finds the whole name."""
    body = redactor.text(doc.body[:BODY_MAX])
    return replace(doc, title=redactor.text(doc.title), detail=redactor.text(doc.detail),
                   body=body + "\n" + " ".join(terms(f"{doc.title}\n{body}")))


def action_line(action: dict[str, Any] | None) -> str:
    if not action:
        return ""
    params = " ".join(f"{k}={v}" for k, v in sorted((action.get("params") or {}).items()))
    line = f"{action.get('verb')} {action.get('target_kind')}/{action.get('target_name')}"
    return f"{line} -n {action.get('namespace')}" + (f" {params}" if params else "")


def incident_doc(facts: kb.IncidentFacts) -> kb.KnowledgeDoc:
    inc, dec = facts.incident, facts.decision
    labels = {**inc["group_labels"], **facts.labels}
    title = inc["title"] or inc["alertname"]
    if inc["target"] and inc["target"] not in title:
        title = f"{title} — {inc['target']}"
    lines = [
        f"alertname: {inc['alertname']}",
        f"severity: {inc['severity']} · namespace: {inc['namespace']} · target: {inc['target']}",
        "labels: " + " ".join(f"{k}={v}" for k, v in sorted(labels.items())),
    ]
    lines += [f"{k}: {v}" for k, v in sorted(facts.annotations.items()) if "url" not in k]
    outcome, detail = "", ""
    if dec is not None:
        outcome = str(dec["state"])
        prop = dec["proposal"] or {}
        act = action_line(prop.get("action"))
        result = dec["result"] or {}
        if outcome == "succeeded" and result.get("dry_run"):
            outcome = "dry_run"
        lines += [
            f"proposed: {act or 'no action'} (risk {prop.get('risk', '?')}, "
            f"{prop.get('source', '?')} {prop.get('source_name', '')})".rstrip(),
            f"summary: {prop.get('summary', '')}",
            f"reasoning: {prop.get('reasoning', '')}",
            f"outcome: {outcome}",
        ]
        if dec.get("decided_by"):
            lines.append(f"decided by: {dec['decided_by']}")
        if dec.get("reason"):
            lines.append(f"reason: {dec['reason']}")
        if dec.get("invalid_reason"):
            lines.append(f"invalid: {dec['invalid_reason']}")
        if result.get("error"):
            lines.append(f"error: {result['error']}")
        detail = str(dec.get("reason") or act or prop.get("summary") or "")
    if inc["status"] == "resolved":
        lines.append(f"resolved at {inc['resolved_at']}")
    lines += [texts.plain(n) for n in facts.notes]
    return kb.KnowledgeDoc("incident", inc["id"], title[:200], "\n".join(lines), outcome,
                           detail[:300])


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _slug(heading: str) -> str:
    return re.sub(r"[^\w]+", "-", heading.lower(), flags=re.UNICODE).strip("-") or "section"


def runbook_sections(rel: str, text: str) -> list[kb.KnowledgeDoc]:
    """One document per section (a heading and what follows up to the next heading)."""
    topic = Path(rel).stem.replace("-", " ").replace("_", " ")
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            if len(match.group(1)) == 1 and not sections[0][0] and not any(
                s[1] for s in sections
            ):
                topic = match.group(2)
                continue
            sections.append((match.group(2), []))
        else:
            sections[-1][1].append(line)
    docs, seen = [], set()
    for heading, body_lines in sections:
        body = "\n".join(body_lines).strip()
        if not body and not heading:
            continue
        slug = _slug(heading) if heading else "top"
        while slug in seen:
            slug += "-1"
        seen.add(slug)
        title = f"{topic} › {heading}" if heading else topic
        first = next((ln.strip() for ln in body_lines if ln.strip()), "")
        docs.append(kb.KnowledgeDoc("runbook", f"{rel}#{slug}", title[:200],
                                    body, "", first[:300]))
    return docs


def _folder_signature(root: Path) -> tuple[str, list[Path]]:
    """A hash of the folder's Markdown files (names, sizes, mtimes), and the files."""
    files = sorted(p for p in root.rglob("*.md") if p.is_file())
    sig = hashlib.sha256()
    for path in files:
        stat = path.stat()
        sig.update(f"{path.relative_to(root).as_posix()}\0{stat.st_mtime_ns}\0"
                   f"{stat.st_size}\n".encode())
    return sig.hexdigest(), files


def _read_folder(root: Path) -> tuple[str, list[kb.KnowledgeDoc]]:
    """(signature of the folder, the section documents of its Markdown files)."""
    sig, files = _folder_signature(root)
    docs: list[kb.KnowledgeDoc] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        docs.extend(runbook_sections(rel, path.read_text(encoding="utf-8", errors="replace")))
    return sig, docs


class Embedder:
    """An OpenAI-compatible /embeddings endpoint."""

    def __init__(self, base_url: str, model: str, api_key: str | None, redactor: Redactor,
                 timeout: float = 10) -> None:
        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.api_key = api_key
        self.redactor = redactor
        self.timeout = timeout

    async def embed(self, inputs: Sequence[str]) -> list[list[float]]:
        data = await post_json(self.url, {"model": self.model, "input": list(inputs)},
                               redactor=self.redactor, api_key=self.api_key,
                               seconds=self.timeout)
        rows = sorted(data["data"], key=lambda d: d.get("index", 0))
        vectors = [[float(x) for x in row["embedding"]] for row in rows]
        if len(vectors) != len(inputs):
            raise ValueError(f"asked for {len(inputs)} embeddings, got {len(vectors)}")
        return vectors


@dataclass(frozen=True)
class Lookup:
    items: list[RelatedItem]
    note: str = ""  # "" | "timeout" | "error"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Knowledge:
    def __init__(self, db: Database, kb_path: str = "", *, embedder: Embedder | None = None,
                 results: int = 3, timeout: float = 5.0,
                 redactor: Redactor | None = None) -> None:
        self.db = db
        self.redactor = redactor or Redactor()
        self.root = Path(kb_path) if kb_path else None
        self.embedder = embedder
        self.results = results
        self.timeout = timeout
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ indexing

    async def refresh(self, *, full: bool = False) -> dict[str, int]:
        """Index what changed (everything with full=True). Counts of documents written."""
        async with self._lock:
            return {
                "incidents": await self._refresh_incidents(full),
                "runbooks": await self._refresh_runbooks(full),
                "embedded": await self._refresh_embeddings(),
            }

    async def reindex(self) -> dict[str, int]:
        async with self.db.write() as conn:
            await kb.clear(conn)
        return await self.refresh(full=True)

    async def _refresh_incidents(self, full: bool) -> int:
        written = 0
        while True:
            async with self.db.read() as conn:
                mark = await kb.get_mark(conn, "incidents") or ""
                changed = await kb.changed_incidents(conn, mark, INCIDENT_BATCH)
                facts = [await kb.incident_facts(conn, inc_id) for inc_id, _ in changed]
            if not changed:
                return written
            now = _utcnow()
            async with self.db.write() as conn:
                for fact in facts:
                    if fact is not None and await kb.upsert(
                        conn, indexable(incident_doc(fact), self.redactor), now):
                        written += 1
                await kb.trim_recent(conn)
                await kb.set_mark(conn, "incidents", changed[-1][1])
            if not full or len(changed) < INCIDENT_BATCH:
                return written

    async def _refresh_runbooks(self, full: bool) -> int:
        if self.root is None:
            return 0
        root = self.root
        if not await asyncio.to_thread(root.is_dir):
            log.warning("KB_PATH %s is not a folder; no runbooks indexed", root)
            return 0
        async with self.db.read() as conn:
            old = await kb.get_mark(conn, "runbooks")
        if not full and old == (await asyncio.to_thread(_folder_signature, root))[0]:
            return 0
        sig, docs = await asyncio.to_thread(_read_folder, root)
        now = _utcnow()
        written = 0
        async with self.db.write() as conn:
            for doc in docs:
                written += await kb.upsert(conn, indexable(doc, self.redactor), now)
            await kb.remove_kind_except(conn, "runbook", [d.ref for d in docs])
            await kb.set_mark(conn, "runbooks", sig)
        return written

    async def _refresh_embeddings(self) -> int:
        """Embed documents that have no vector yet, a batch at a time; each batch is kept,
        so a lookup cut short by its budget leaves less for the next one."""
        if self.embedder is None:
            return 0
        done = 0
        while True:
            async with self.db.read() as conn:
                todo = await kb.missing_embeddings(conn, self.embedder.model, EMBED_BATCH)
            if not todo:
                return done
            vectors = await self.embedder.embed([text for _, text in todo])
            async with self.db.write() as conn:
                for (doc_id, _), vector in zip(todo, vectors, strict=True):
                    await kb.set_embedding(conn, doc_id, vector, self.embedder.model)
            done += len(todo)

    # ------------------------------------------------------------ lookup

    async def related(self, incident: Incident, alerts: Sequence[Alert]) -> Lookup:
        """The top related items within the time budget; never raises."""
        try:
            async with asyncio.timeout(self.timeout):
                return Lookup(await self._related(incident, alerts))
        except TimeoutError:
            log.warning("knowledge lookup for %s took over %ss; going on without it",
                        incident.id, self.timeout)
            return Lookup([], "timeout")
        except Exception:
            log.exception("knowledge lookup for %s failed; going on without it", incident.id)
            return Lookup([], "error")

    async def _related(self, incident: Incident, alerts: Sequence[Alert]) -> list[RelatedItem]:
        await self.refresh()
        query = query_text(incident, alerts)
        vector = None
        if self.embedder is not None:
            vector = (await self.embedder.embed([query]))[0]
        async with self.db.read(slow=True) as conn:
            hits = await kb.search(
                conn, terms(query), limit=self.results * 3, exclude_ref=incident.id,
                vector=vector, model=self.embedder.model if self.embedder else None,
            )
        return select(hits, self.results)


def query_text(incident: Incident, alerts: Sequence[Alert]) -> str:
    labels = incident_labels(incident, alerts)
    notes = incident_annotations(alerts)
    parts = [incident.title, incident.alertname, incident.target, incident.namespace]
    parts += [v for k, v in sorted(labels.items()) if k not in ("severity",)]
    parts += [v for k, v in sorted(notes.items()) if "url" not in k]
    return "\n".join(p for p in parts if p)


def _squash(bm25: float) -> float:
    score = max(0.0, -bm25)
    return score / (1.0 + score)


def select(hits: Sequence[kb.Hit], limit: int) -> list[RelatedItem]:
    """Hits worth showing, as RelatedItems with a similarity in [0, 1]."""
    best = max((-h.bm25 for h in hits if h.bm25 is not None), default=0.0)
    items = []
    for hit in hits:
        text_ok = hit.bm25 is not None and best > 0 and -hit.bm25 >= RELATIVE_FLOOR * best
        vector_ok = hit.cosine is not None and hit.cosine >= COSINE_FLOOR
        if not (text_ok or vector_ok):
            continue
        similarity = hit.cosine if hit.cosine is not None else _squash(hit.bm25 or 0.0)
        doc = hit.doc
        items.append(RelatedItem(
            kind="incident" if doc.kind == "incident" else "runbook",
            ref=doc.ref, title=doc.title, similarity=round(max(0.0, similarity), 3),
            outcome=doc.outcome, detail=doc.detail,
        ))
        if len(items) >= limit:
            break
    return items
