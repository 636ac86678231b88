"""``aios fs check``: drift between SQLite (the truth) and its derived indexes (FTS5, chroma), and a rebuild."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from memory.semfs.core import SemFS

__all__ = ["check", "rebuild"]


def check(fs: SemFS) -> dict[str, Any]:
    """Counts of every kind of drift; ``ok`` is true when there is none (pending vectors are not drift)."""
    db = fs.db
    embedded = {r["id"] for r in db.q("SELECT id FROM semfs_chunks WHERE embedded = 1")}
    all_chunks = {r["id"] for r in db.q("SELECT id FROM semfs_chunks")}
    pending_upserts = {r["chunk_id"] for r in db.q("SELECT chunk_id FROM semfs_outbox WHERE op = 'upsert'")}
    pending_deletes = {r["chunk_id"] for r in db.q("SELECT chunk_id FROM semfs_outbox WHERE op = 'delete'")}
    in_chroma = fs.vectors.all_ids()
    fts = {r["rowid"] for r in db.q("SELECT rowid FROM semfs_fts")}
    report = {
        "chunks": len(all_chunks),
        "vectors": len(in_chroma),
        "vectors_pending": len(pending_upserts & all_chunks),
        "missing_in_chroma": len(embedded - in_chroma),
        "orphans_in_chroma": len((in_chroma - all_chunks) - pending_deletes),
        "unqueued_without_vector": len((all_chunks - embedded) - pending_upserts),
        "missing_in_fts": len(all_chunks - fts),
        "orphans_in_fts": len(fts - all_chunks),
        "versions_missing_blob": db.scalar(
            "SELECT count(*) FROM semfs_versions v WHERE v.sha256 IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM semfs_blobs b WHERE b.sha256 = v.sha256)"
        ),
        "duplicate_chunks": db.scalar(
            "SELECT count(*) FROM (SELECT file_id, seq FROM semfs_chunks GROUP BY file_id, seq HAVING count(*) > 1)"
        ),
    }
    drift = [k for k in report if k not in ("chunks", "vectors", "vectors_pending") and report[k]]
    report["drift"] = drift
    report["ok"] = not drift
    return report


def rebuild(fs: SemFS, *, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Regenerate FTS and every vector from the chunks in SQLite."""
    started = time.monotonic()
    fs.vectors.reset()
    with fs.db.tx() as conn:
        conn.execute("DELETE FROM semfs_fts")
        conn.execute(
            "INSERT INTO semfs_fts (rowid, text, heading, path) SELECT c.id, c.text, c.heading, "
            "replace(replace(replace(replace(f.relpath, '/', ' '), '_', ' '), '-', ' '), '.', ' ') "
            "FROM semfs_chunks c JOIN semfs_files f ON f.id = c.file_id"
        )
        conn.execute("DELETE FROM semfs_outbox")
        conn.execute("UPDATE semfs_chunks SET embedded = 0")
        conn.execute(
            "INSERT INTO semfs_outbox (op, chunk_id, created_at) SELECT 'upsert', id, ? FROM semfs_chunks",
            (time.time(),),
        )
    done = fs.embed_pending(progress=progress)
    return {"vectors": done, "seconds": round(time.monotonic() - started, 2), **check(fs)}
