"""Agent memory per namespace: core blocks, recall (the message log) and archival items, all with provenance.

- **Core blocks** are small labelled texts rendered into the agent's prompt. Edits are staged and applied
  at the agent's turn boundary, so the prompt prefix of the turn in flight (and its cached KV) survives.
- **Recall** is the kernel's message log: every message of every process of agent ``<name>`` belongs to
  namespace ``agent:<name>``. It is indexed in FTS5 by triggers and in vectors through the outbox.
- **Archival** items are texts with tags, a time and a source, searchable by text, tags and time.

Search is hybrid: FTS5 BM25 and vector similarity (chroma, :mod:`memory.embeddings`) fused by reciprocal
rank. SQLite is the source of truth; vectors are a derived index filled from ``mem_vector_outbox``.
Every item can be forgotten (deleted everywhere, its vector through the outbox).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, Protocol

import sqlite_utils

from aios.errors import UsageError
from memory._sqltx import immediate, locked

__all__ = [
    "CORE_DEFAULT_LIMIT",
    "SOURCES",
    "AgentMemory",
    "MemoryOpError",
    "VectorIndex",
    "parse_item",
]

SOURCES: tuple[str, ...] = ("user", "file", "tool", "agent")
CORE_DEFAULT_LIMIT = 2000
CORE_MAX_LIMIT = 8000
CORE_MAX_BLOCKS = 16
RRF_K = 60
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
Kind = Literal["recall", "archival"]


class MemoryOpError(UsageError):
    """A memory operation was asked for something impossible; nothing was changed."""


class VectorIndex(Protocol):
    """The derived vector index (chroma in the kernel; see memory/memory_vectors.py)."""

    def query(self, namespace: str, text: str, kinds: tuple[str, ...], n: int) -> list[str]: ...


def parse_item(ref: str) -> tuple[str, int]:
    """``r12`` (recall message) or ``a7`` (archival item) -> (kind, id)."""
    match = re.fullmatch(r"([ra])(\d+)", ref.strip())
    if not match:
        raise MemoryOpError(f"unknown memory item {ref!r}", "items are r<id> (recall) or a<id> (archival)")
    return ("recall" if match[1] == "r" else "archival"), int(match[2])


def _fts_query(text: str) -> str:
    words = re.findall(r"\w+", text.lower())
    return " OR ".join(f'"{w}"' for w in words)


def _check_source(kind: str) -> None:
    if kind not in SOURCES:
        raise MemoryOpError(f"unknown provenance {kind!r} (use one of: {', '.join(SOURCES)})")


def _agent_of(namespace: str) -> str | None:
    return namespace.removeprefix("agent:") if namespace.startswith("agent:") else None


class AgentMemory:
    def __init__(
        self, db: sqlite_utils.Database, *, lock: threading.RLock | None = None, read_only: bool = False
    ) -> None:
        self.db = db
        self.read_only = read_only
        self._lock = lock or threading.RLock()
        self.vectors: VectorIndex | None = None

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with immediate(self.db, self._lock):
            yield

    # -- core blocks ---------------------------------------------------------------------------------

    @locked
    def core(self, namespace: str) -> list[dict[str, Any]]:
        sql = "SELECT * FROM mem_core WHERE namespace = ? ORDER BY label"
        return [dict(r) for r in self.db.query(sql, [namespace])]

    @locked
    def pending(self, namespace: str) -> list[dict[str, Any]]:
        sql = "SELECT * FROM mem_core_pending WHERE namespace = ? ORDER BY id"
        return [dict(r) for r in self.db.query(sql, [namespace])]

    def stage_core(
        self,
        namespace: str,
        label: str,
        value: str | None,
        *,
        limit: int | None = None,
        source: str = "agent",
        source_ref: str = "",
        actor: str,
        pid: int | None = None,
    ) -> dict[str, Any]:
        """Stage a core-block edit (``value=None`` deletes) for the next turn boundary of ``pid``.

        Without a pid (a CLI edit) it is applied at once.
        """
        if not _LABEL.match(label):
            raise MemoryOpError(f"bad core block label {label!r}", "lowercase letters, digits, _ or -, at most 40")
        _check_source(source)
        current = {b["label"]: b for b in self.core(namespace)}
        staged = {p["label"] for p in self.pending(namespace) if p["value"] is not None}
        char_limit = limit or (current[label]["char_limit"] if label in current else CORE_DEFAULT_LIMIT)
        if not 1 <= char_limit <= CORE_MAX_LIMIT:
            raise MemoryOpError(f"a core block limit is 1..{CORE_MAX_LIMIT} characters (got {char_limit})")
        if value is None and label not in current and label not in staged:
            raise MemoryOpError(f"no core block {label!r} in {namespace}")
        if value is not None and len(value) > char_limit:
            raise MemoryOpError(
                f"core block {label!r} is limited to {char_limit} characters (got {len(value)})",
                "shorten it, or move the detail to archival memory",
            )
        if value is not None and label not in current and len(set(current) | staged | {label}) > CORE_MAX_BLOCKS:
            raise MemoryOpError(f"{namespace} already has {CORE_MAX_BLOCKS} core blocks")
        row = {
            "namespace": namespace,
            "label": label,
            "value": value,
            "char_limit": char_limit,
            "source_kind": source,
            "source_ref": source_ref,
            "actor": actor,
            "created_at": time.time(),
            "pid": pid,
        }
        with self._tx():
            self.db["mem_core_pending"].insert(row)  # type: ignore[union-attr]
        if pid is None:
            self.apply_pending(namespace=namespace, pid=None)
        return {**row, "applied": pid is None}

    def apply_pending(self, *, namespace: str | None = None, pid: int | None = None, everything: bool = False) -> int:
        """Apply staged core edits (in order) for ``pid`` (or all of ``namespace``'s, or all): one transaction."""
        clauses: list[str] = []
        params: list[Any] = []
        if not everything:
            if namespace is not None:
                clauses.append("namespace = ?")
                params.append(namespace)
            clauses.append("pid IS ?")
            params.append(pid)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._tx():
            rows = [dict(r) for r in self.db.query(f"SELECT * FROM mem_core_pending {where} ORDER BY id", params)]
            for row in rows:
                if row["value"] is None:
                    self.db.execute(
                        "DELETE FROM mem_core WHERE namespace = ? AND label = ?", [row["namespace"], row["label"]]
                    )
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO mem_core VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            row["namespace"],
                            row["label"],
                            row["value"],
                            row["char_limit"],
                            row["source_kind"],
                            row["source_ref"],
                            row["actor"],
                            row["created_at"],
                        ],
                    )
                self.db.execute("DELETE FROM mem_core_pending WHERE id = ?", [row["id"]])
        return len(rows)

    @locked
    def render_core(self, namespace: str) -> str:
        """The core blocks as prompt text (stable order: by label)."""
        return "\n".join(f"[{b['label']}]\n{b['value']}" for b in self.core(namespace))

    # -- recall -------------------------------------------------------------------------------------

    def sync_recall(self, batch: int = 5000) -> int:
        """Index messages written since the last sync (FTS5 now, vectors through the outbox)."""
        with self._lock:  # read and write as one step: two threads syncing at once would index rows twice
            row = self.db.execute("SELECT value FROM mem_meta WHERE key = 'recall_upto'").fetchone()
            upto = int(row[0]) if row else 0
            rows = self.db.execute(
                "SELECT id, content, created_at FROM messages WHERE id > ? ORDER BY id LIMIT ?", [upto, batch]
            ).fetchall()
            if not rows:
                return 0
            with self._tx():
                self.db.conn.executemany(
                    "INSERT INTO mem_recall_fts(rowid, content) VALUES (?, ?)", [r[:2] for r in rows]
                )
                self.db.conn.executemany(
                    "INSERT INTO mem_vector_outbox(item, op, created_at) VALUES (?, 'upsert', ?)",
                    [(f"r{r[0]}", r[2]) for r in rows],
                )
                self.db.execute(
                    "INSERT OR REPLACE INTO mem_meta(key, value) VALUES ('recall_upto', ?)", [str(rows[-1][0])]
                )
            return len(rows)

    # -- archival ------------------------------------------------------------------------------------

    def archive(
        self, namespace: str, text: str, *, tags: Iterable[str] = (), source: str, source_ref: str = "", actor: str
    ) -> dict[str, Any]:
        if not text.strip():
            raise MemoryOpError("an archival item needs some text")
        _check_source(source)
        clean_tags = sorted({t.strip().lower() for t in tags if t.strip()})
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO mem_archival (namespace, text, tags, source_kind, source_ref, actor, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [namespace, text, json.dumps(clean_tags), source, source_ref, actor, time.time()],
            )
        return self.item(namespace, f"a{cur.lastrowid}")

    # -- items ---------------------------------------------------------------------------------------

    def _recall_rows(
        self, where: str, params: list[Any], order: str = "m.id DESC", limit: int = 50
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT m.id, m.pid, m.role, m.content, m.created_at, p.agent FROM messages m "
            f"JOIN processes p ON p.pid = m.pid WHERE {where} ORDER BY {order} LIMIT {int(limit)}"
        )
        return [_recall_item(dict(r)) for r in self.db.query(sql, params)]

    @locked
    def item(self, namespace: str, ref: str) -> dict[str, Any]:
        kind, num = parse_item(ref)
        if kind == "archival":
            rows = list(self.db.query("SELECT * FROM mem_archival WHERE id = ? AND namespace = ?", [num, namespace]))
            found = [_archival_item(dict(r)) for r in rows]
        else:
            agent = _agent_of(namespace)
            found = self._recall_rows("m.id = ? AND p.agent = ?", [num, agent]) if agent else []
        if not found:
            raise MemoryOpError(f"no memory item {ref} in {namespace}", f"see `aios mem ls {namespace}`")
        return found[0]

    @locked
    def list_items(self, namespace: str, *, kind: str = "all", limit: int = 50) -> dict[str, Any]:
        if kind not in ("all", "core", "recall", "archival"):
            raise MemoryOpError(f"unknown memory kind {kind!r} (use core, recall, archival or all)")
        out: dict[str, Any] = {"namespace": namespace}
        if kind in ("all", "core"):
            out["core"] = self.core(namespace)
            out["pending"] = self.pending(namespace)
        if kind in ("all", "recall"):
            agent = _agent_of(namespace)
            out["recall"] = self._recall_rows("p.agent = ?", [agent], limit=limit) if agent else []
        if kind in ("all", "archival"):
            sql = f"SELECT * FROM mem_archival WHERE namespace = ? ORDER BY id DESC LIMIT {int(limit)}"
            out["archival"] = [_archival_item(dict(r)) for r in self.db.query(sql, [namespace])]
        return out

    def forget(self, namespace: str, ref: str) -> dict[str, Any]:
        """Delete an item for good (its FTS entry by trigger, its vector through the outbox)."""
        item = self.item(namespace, ref)
        kind, num = parse_item(ref)
        with self._tx():
            if kind == "archival":
                self.db.execute("DELETE FROM mem_archival WHERE id = ?", [num])
            else:
                self.db.execute("DELETE FROM messages WHERE id = ?", [num])
                self.db.execute("DELETE FROM mem_recall_fts WHERE rowid = ?", [num])
                self.db.execute(
                    "INSERT INTO mem_vector_outbox(item, op, created_at) VALUES (?, 'delete', ?)", [ref, time.time()]
                )
        return item

    def forget_core(self, namespace: str, label: str, *, actor: str) -> dict[str, Any]:
        return self.stage_core(namespace, label, None, actor=actor)

    # -- search --------------------------------------------------------------------------------------

    def search(
        self,
        namespace: str,
        query: str,
        *,
        kinds: tuple[str, ...] = ("recall", "archival"),
        tags: Iterable[str] = (),
        since: float | None = None,
        until: float | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Hybrid search (BM25 + vectors, reciprocal-rank fused) with tag and time filters."""
        for kind in kinds:
            if kind not in ("recall", "archival"):
                raise MemoryOpError(f"unknown memory kind {kind!r} to search (use recall or archival)")
        want_tags = sorted({t.strip().lower() for t in tags if t.strip()})
        if "recall" in kinds and not self.read_only:
            self.sync_recall()
        candidates: dict[str, dict[str, Any]] = {}
        ranked: list[list[str]] = []
        fts = _fts_query(query)
        if fts:
            ranked.append(self._fts_hits(namespace, fts, kinds, since, until, limit * 4, candidates))
        if self.vectors is not None:
            refs = self.vectors.query(namespace, query, kinds, limit * 4)
            keep = []
            for ref in refs:
                try:
                    item = candidates.get(ref) or self.item(namespace, ref)
                except MemoryOpError:
                    continue  # forgotten since it was indexed; the outbox removes its vector
                if _in_window(item, since, until):
                    candidates[ref] = item
                    keep.append(ref)
            ranked.append(keep)
        scores: dict[str, float] = {}
        for ranking in ranked:
            for rank, ref in enumerate(ranking):
                scores[ref] = scores.get(ref, 0.0) + 1.0 / (RRF_K + rank + 1)
        results = []
        for ref in sorted(scores, key=lambda r: (-scores[r], r)):
            item = candidates[ref]
            if want_tags and not set(want_tags) <= set(item.get("tags", [])):
                continue
            results.append({**item, "score": round(scores[ref], 6)})
            if len(results) >= limit:
                break
        return results

    @locked
    def _fts_hits(
        self,
        namespace: str,
        fts: str,
        kinds: tuple[str, ...],
        since: float | None,
        until: float | None,
        n: int,
        candidates: dict[str, dict[str, Any]],
    ) -> list[str]:
        hits: list[tuple[float, str]] = []
        time_sql, time_params = _time_clause("created_at", since, until)
        if "archival" in kinds:
            sql = (
                "SELECT a.*, bm25(mem_archival_fts) AS rank FROM mem_archival_fts JOIN mem_archival a "
                f"ON a.id = mem_archival_fts.rowid WHERE mem_archival_fts MATCH ? AND a.namespace = ?{time_sql} "
                f"ORDER BY rank LIMIT {int(n)}"
            )
            for row in self.db.query(sql, [fts, namespace, *time_params]):
                item = _archival_item(dict(row))
                candidates[item["id"]] = item
                hits.append((row["rank"], item["id"]))
        agent = _agent_of(namespace)
        if "recall" in kinds and agent:
            time_sql, time_params = _time_clause("m.created_at", since, until)
            sql = (
                "SELECT m.id, m.pid, m.role, m.content, m.created_at, p.agent, bm25(mem_recall_fts) AS rank "
                "FROM mem_recall_fts JOIN messages m ON m.id = mem_recall_fts.rowid JOIN processes p ON p.pid = m.pid "
                f"WHERE mem_recall_fts MATCH ? AND p.agent = ?{time_sql} ORDER BY rank LIMIT {int(n)}"
            )
            for row in self.db.query(sql, [fts, agent, *time_params]):
                item = _recall_item(dict(row))
                candidates[item["id"]] = item
                hits.append((row["rank"], item["id"]))
            # Messages not indexed yet (a read-only reader cannot index them): plain substring match.
            meta = self.db.execute("SELECT value FROM mem_meta WHERE key = 'recall_upto'").fetchone()
            words = re.findall(r"\w+", fts.replace('"', " "))
            if words:
                like = " OR ".join("m.content LIKE ?" for _ in words)
                for item in self._recall_rows(
                    f"m.id > ? AND p.agent = ? AND ({like}){time_sql}",
                    [int(meta[0]) if meta else 0, agent, *(f"%{w}%" for w in words), *time_params],
                    limit=n,
                ):
                    candidates[item["id"]] = item
                    hits.append((0.0, item["id"]))
        return [ref for _, ref in sorted(hits)]


def _time_clause(column: str, since: float | None, until: float | None) -> tuple[str, list[float]]:
    sql, params = "", []
    if since is not None:
        sql += f" AND {column} >= ?"
        params.append(since)
    if until is not None:
        sql += f" AND {column} <= ?"
        params.append(until)
    return sql, params


def _in_window(item: dict[str, Any], since: float | None, until: float | None) -> bool:
    ts = item["created_at"]
    return (since is None or ts >= since) and (until is None or ts <= until)


def _archival_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"a{row['id']}",
        "kind": "archival",
        "namespace": row["namespace"],
        "text": row["text"],
        "tags": json.loads(row["tags"]),
        "source": {"kind": row["source_kind"], "ref": row["source_ref"], "actor": row["actor"]},
        "created_at": row["created_at"],
    }


def _recall_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"r{row['id']}",
        "kind": "recall",
        "namespace": f"agent:{row['agent']}",
        "text": row["content"],
        "tags": [],
        "role": row["role"],
        "source": {
            "kind": "user" if row["role"] == "user" else "agent",
            "ref": f"pid {row['pid']}",
            "actor": "user" if row["role"] == "user" else f"agent:{row['agent']}#{row['pid']}",
        },
        "created_at": row["created_at"],
    }
