"""Chunk vectors in chroma, filled from the outbox.

SQLite is the source of truth; chroma is derived. Every chunk insert or delete writes an outbox row in the
same transaction; :meth:`Vectors.drain` applies outbox rows to chroma (``upsert``/``delete`` by chunk id,
both idempotent) and only then deletes them and marks the chunks embedded. A crash anywhere in between
repeats work, never loses or duplicates it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aios.errors import AiosError
from memory.chroma_lock import CHROMA_LOCK
from memory.semfs.db import SemDB

__all__ = ["Vectors", "embed_text"]

log = logging.getLogger(__name__)

COLLECTION = "semfs"


def embed_text(relpath: str, heading: str, text: str) -> str:
    """What gets embedded for a chunk: its file name and section give context the body may lack."""
    name = relpath.rsplit("/", 1)[-1]
    return f"{name} {heading}\n{text}" if heading else f"{name}\n{text}"


class Vectors:
    def __init__(self, db: SemDB, chroma_path: Path, *, chroma_url: str = "") -> None:
        self.db = db
        self.chroma_path = chroma_path
        #: A chroma server (``[semfs] chroma_url``) instead of the persistent client at ``chroma_path``.
        self.chroma_url = chroma_url
        self._client: Any = None
        self._collection: Any = None
        self._open_lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        #: The collection's size, cached by the writer between its own changes (a search asked twice).
        self._count: int | None = None
        #: Only the writer process changes the collection, so only it may trust the cached count.
        self.writer = db._lockfile is not None

    # chroma is opened on first use, so a kernel with no mounts never loads it.
    @property
    def client(self) -> Any:
        with self._open_lock:
            if self._client is None:
                from memory import embeddings  # chromadb is heavy: load it only when vectors are needed

                self._client = embeddings.open_chroma(self.chroma_path, url=self.chroma_url)
            return self._client

    @property
    def collection(self) -> Any:
        if self._collection is None:
            client = self.client
            with self._open_lock:
                if self._collection is None:
                    from memory import embeddings

                    self._collection = embeddings.get_collection(client, self.collection_prefix)
        return self._collection

    @property
    def collection_prefix(self) -> str:
        """``semfs``; on a shared chroma server, ``semfs-`` and a key of this host and database, as chunk ids
        are this database's own."""
        if not self.chroma_url:
            return COLLECTION
        import hashlib
        import socket

        where = f"{socket.gethostname()}:{Path(self.db.path).resolve()}"
        return f"{COLLECTION}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"

    # -- the outbox ------------------------------------------------------------------------------

    def pending(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM semfs_outbox") or 0)

    def drain_once(self, batch: int = 8) -> int:
        """Apply up to ``batch`` outbox rows; return how many were applied (0 when the outbox is empty)."""
        rows = self.db.q("SELECT id, op, chunk_id FROM semfs_outbox ORDER BY id LIMIT ?", (batch,))
        if not rows:
            return 0
        # Apply in order, but group runs of the same op so chroma sees few calls.
        done: list[int] = []
        upserts: list[int] = []
        for row in rows:
            if row["op"] == "delete":
                self._upsert(upserts)
                upserts = []
                with CHROMA_LOCK:
                    self.collection.delete(ids=[str(row["chunk_id"])])
                self._count = None
            else:
                upserts.append(row["chunk_id"])
            done.append(row["id"])
        self._upsert(upserts)
        with self.db.tx() as conn:
            conn.executemany("DELETE FROM semfs_outbox WHERE id = ?", [(i,) for i in done])
            conn.executemany(
                "UPDATE semfs_chunks SET embedded = 1 WHERE id = ?",
                [(r["chunk_id"],) for r in rows if r["op"] == "upsert"],
            )
        return len(rows)

    def _upsert(self, chunk_ids: list[int]) -> None:
        if not chunk_ids:
            return
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.q(
            "SELECT c.id, c.heading, c.text, f.relpath, f.mount_id, f.kind, f.id AS file_id FROM semfs_chunks c "
            f"JOIN semfs_files f ON f.id = c.file_id WHERE c.id IN ({marks})",
            chunk_ids,
        )
        if not rows:
            return  # every one was deleted since; their delete rows follow in the outbox
        from memory import embeddings

        vectors = embeddings.embed([embed_text(r["relpath"], r["heading"], r["text"]) for r in rows])
        with CHROMA_LOCK:  # chroma waits on its own locks holding the GIL: one caller at a time (embeddings.py)
            self.collection.upsert(
                ids=[str(r["id"]) for r in rows],
                embeddings=vectors,
                metadatas=[{"mount_id": r["mount_id"], "file_id": r["file_id"], "kind": r["kind"]} for r in rows],
            )
        self._count = None

    def drain(self, *, progress: Callable[[int, int], None] | None = None, stop: threading.Event | None = None) -> int:
        """Apply the whole outbox (foreground); ``progress(done, total)`` after each batch."""
        total = self.pending()
        done = 0
        while not (stop and stop.is_set()):
            n = self.drain_once()
            if not n:
                break
            done += n
            if progress:
                progress(done, max(total, done))
        return done

    def run_background(self, busy: Callable[[], bool] | None = None, *, max_defer_s: float = 5.0) -> None:
        """The embedder thread's loop: drain whenever woken (or every few seconds), until ``stopping``.

        ``busy()`` true means the LLM is generating: embedding competes with it for the same cores (one busy core
        cut decoding ~4x here), so a batch waits, but never more than ``max_defer_s``.
        """
        deferred_since: float | None = None
        while not self.stopping.is_set():
            if busy is not None and self.pending() and busy():
                now = time.monotonic()
                deferred_since = deferred_since or now
                if now - deferred_since < max_defer_s:
                    self.stopping.wait(0.1)
                    continue
            deferred_since = None
            try:
                applied = self.drain_once()
            except AiosError as exc:  # e.g. the chroma server is unreachable: one line, not a traceback
                log.warning("background embedding failed, retrying shortly: %s", exc.one_line())
                applied = 0
                self.stopping.wait(2.0)
            except Exception:
                log.exception("background embedding failed; retrying shortly")
                applied = 0
                self.stopping.wait(2.0)
            if not applied:
                self.wake.wait(2.0)
                self.wake.clear()

    # -- queries ---------------------------------------------------------------------------------

    def count(self) -> int:
        """Vectors in the collection (cached in the writer between its own changes)."""
        if self._collection is None and not self.chroma_url and not self.chroma_path.exists():
            return 0
        cached = self._count
        if cached is not None:
            return cached
        with CHROMA_LOCK:
            found = int(self.collection.count())
        if self.writer:
            self._count = found
        return found

    def query(self, vector: np.ndarray, n: int, where: dict[str, Any] | None) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the ``n`` nearest chunks, best first."""
        total = self.count()
        if total == 0:
            return []
        with CHROMA_LOCK:
            result = self.collection.query(
                query_embeddings=[vector.tolist()], n_results=min(n, total), where=where or None, include=["distances"]
            )
        ids = result["ids"][0]
        dists = (result.get("distances") or [[]])[0]
        return [(int(i), 1.0 - float(d)) for i, d in zip(ids, dists, strict=False)]

    def all_ids(self) -> set[int]:
        out: set[int] = set()
        offset = 0
        while True:
            with CHROMA_LOCK:
                page = self.collection.get(include=[], limit=5000, offset=offset)
            if not page["ids"]:
                return out
            out.update(int(i) for i in page["ids"])
            offset += len(page["ids"])

    def vectors_for(self, chunk_ids: list[int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(chunk_ids), 5000):
            part = [str(i) for i in chunk_ids[start : start + 5000]]
            with CHROMA_LOCK:
                got = self.collection.get(ids=part, include=["embeddings"])
            embs = got.get("embeddings")
            if embs is None:
                continue
            for cid, emb in zip(got["ids"], embs, strict=False):
                out[int(cid)] = np.asarray(emb, dtype=np.float32)
        return out

    def reset(self) -> None:
        """Drop the collection (for a rebuild from SQLite)."""
        with CHROMA_LOCK:
            self.client.delete_collection(self.collection.name)
        self._collection = None
        self._count = None
