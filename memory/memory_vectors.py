"""The vector side of agent memory: a chroma collection filled from ``mem_vector_outbox``.

SQLite stays the source of truth. The outbox (filled by triggers on ``messages`` and ``mem_archival``) is
processed idempotently by one background thread with its own SQLite connection: an upsert re-reads the
item's current text (an item forgotten meanwhile becomes a delete), and a row leaves the outbox only after
chroma has the change, so a crash in between repeats work instead of losing it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["ChromaVectors"]

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "agent-memory"


class ChromaVectors:
    def __init__(self, db_path: Path, chroma_path: Path | None = None) -> None:
        from memory.embeddings import CHROMA_LOCK, get_collection, open_chroma

        with CHROMA_LOCK:
            self._collection = get_collection(open_chroma(chroma_path), COLLECTION_PREFIX)
        self._db_path = db_path
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn_lock = threading.Lock()

    # -- querying (any thread) -----------------------------------------------------------------------

    def query(self, namespace: str, text: str, kinds: tuple[str, ...], n: int) -> list[str]:
        from memory.embeddings import CHROMA_LOCK, embed_one

        if not text.strip():
            return []
        vector = embed_one(text)  # outside the chroma lock: it needs only the model
        where: dict[str, Any] = {"$and": [{"namespace": namespace}, {"kind": {"$in": list(kinds)}}]}
        with CHROMA_LOCK:
            if self._collection.count() == 0:
                return []
            found = self._collection.query(query_embeddings=[vector], n_results=n, where=where)
        return list(found["ids"][0]) if found["ids"] else []

    # -- indexing (the worker thread, or a test calling it directly) ---------------------------------

    def index_pending(self, batch: int = 8) -> int:
        """Process up to ``batch`` outbox rows; returns how many were handled."""
        with self._conn_lock:
            conn = sqlite3.connect(self._db_path, timeout=10)
            try:
                return self._index(conn, batch)
            finally:
                conn.close()

    def _index(self, conn: sqlite3.Connection, batch: int) -> int:
        rows = conn.execute("SELECT id, item, op FROM mem_vector_outbox ORDER BY id LIMIT ?", [batch]).fetchall()
        if not rows:
            return 0
        upserts: dict[str, tuple[str, dict[str, Any]]] = {}
        deletes: set[str] = set()
        for _, item, op in rows:
            found = self._read(conn, item) if op == "upsert" else None
            if found is None:
                deletes.add(item)
                upserts.pop(item, None)
            else:
                upserts[item] = found
                deletes.discard(item)
        from memory.embeddings import CHROMA_LOCK, embed

        if upserts:
            ids = list(upserts)
            documents = [upserts[i][0] for i in ids]
            vectors = embed(documents)  # outside the chroma lock: searches need not wait for the model
            with CHROMA_LOCK:
                self._collection.upsert(
                    ids=ids, embeddings=vectors, documents=documents, metadatas=[upserts[i][1] for i in ids]
                )
        if deletes:
            with CHROMA_LOCK:
                self._collection.delete(ids=sorted(deletes))
        with conn:
            conn.executemany("DELETE FROM mem_vector_outbox WHERE id = ?", [(r[0],) for r in rows])
        return len(rows)

    @staticmethod
    def _read(conn: sqlite3.Connection, item: str) -> tuple[str, dict[str, Any]] | None:
        num = int(item[1:])
        if item[0] == "a":
            row = conn.execute("SELECT text, namespace, created_at FROM mem_archival WHERE id = ?", [num]).fetchone()
            kind = "archival"
        else:
            row = conn.execute(
                "SELECT m.content, 'agent:' || p.agent, m.created_at FROM messages m JOIN processes p ON p.pid = m.pid "
                "WHERE m.id = ?",
                [num],
            ).fetchone()
            kind = "recall"
        if row is None or not str(row[0]).strip():
            return None
        return str(row[0]), {"namespace": row[1], "kind": kind, "created_at": float(row[2])}

    def backlog(self) -> int:
        conn = sqlite3.connect(self._db_path, timeout=10)
        try:
            return int(conn.execute("SELECT count(*) FROM mem_vector_outbox").fetchone()[0])
        finally:
            conn.close()

    # -- the worker ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="aios-memory-vectors", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.index_pending()
            except Exception:
                log.exception("memory vector indexing failed; retrying")
                done = 0
            if not done:
                self._wake.wait(1.0)
                self._wake.clear()
