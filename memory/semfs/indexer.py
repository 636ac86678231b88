"""Indexing one file: read, hash, extract, chunk, and apply only the changed chunks, in one transaction.

Each file's update is atomic: its row, its chunks and their FTS rows, the outbox entries for the background
embedder, and (when the content changed) a new version all commit together or not at all. A kernel killed
mid-index therefore leaves each file either fully old or fully new; reconciliation at the next start catches
up with whatever changed meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import stat
import time
import zlib
from dataclasses import dataclass
from typing import Literal

from aios.confined import Confined, PathDenied
from memory.semfs.chunking import Chunk, chunk_text
from memory.semfs.db import Mount, SemDB
from memory.semfs.extract import ExtractError, extract, kind_of
from memory.semfs.ignore import MAX_FILE_BYTES

__all__ = ["IndexOutcome", "Indexer", "store_blob"]

log = logging.getLogger(__name__)

Outcome = Literal["indexed", "unchanged", "skipped", "deleted", "missing"]


@dataclass(frozen=True)
class IndexOutcome:
    relpath: str
    outcome: Outcome
    chunks_added: int = 0
    chunks_removed: int = 0
    reason: str = ""


def store_blob(conn: sqlite3.Connection, data: bytes) -> str:
    """Store ``data`` content-addressed (deduplicated, zlib-compressed); return its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    conn.execute(
        "INSERT OR IGNORE INTO semfs_blobs (sha256, size, data) VALUES (?, ?, ?)",
        (digest, len(data), zlib.compress(data, 6)),
    )
    return digest


def _add_version(
    conn: sqlite3.Connection, mount_id: int, relpath: str, digest: str | None, size: int, source: str
) -> bool:
    last = conn.execute(
        "SELECT sha256 FROM semfs_versions WHERE mount_id = ? AND relpath = ? ORDER BY id DESC LIMIT 1",
        (mount_id, relpath),
    ).fetchone()
    if last is not None and last[0] == digest:
        return False
    if last is None and digest is None:
        return False  # never seen, nothing to record
    conn.execute(
        "INSERT INTO semfs_versions (mount_id, relpath, sha256, size, created_at, source) VALUES (?, ?, ?, ?, ?, ?)",
        (mount_id, relpath, digest, size, time.time(), source),
    )
    return True


def _delete_chunks(conn: sqlite3.Connection, chunk_ids: list[int]) -> None:
    now = time.time()
    for cid in chunk_ids:
        conn.execute("DELETE FROM semfs_chunks WHERE id = ?", (cid,))
        conn.execute("DELETE FROM semfs_fts WHERE rowid = ?", (cid,))
        conn.execute("INSERT INTO semfs_outbox (op, chunk_id, created_at) VALUES ('delete', ?, ?)", (cid, now))


class Indexer:
    def __init__(self, db: SemDB, *, max_bytes: int = MAX_FILE_BYTES) -> None:
        self.db = db
        self.max_bytes = max_bytes

    def index_file(
        self, mount: Mount, relpath: str, *, source: str = "index", data: bytes | None = None
    ) -> IndexOutcome:
        """Bring the index up to date with the file at ``relpath`` (deleting it from the index if it is gone).

        The file is opened inside the mount with no symbolic link followed (``aios.confined``), and its size
        and time are read off that same fd: a file swapped for a link meanwhile is simply not in the index.
        """
        full = mount.path / relpath
        # Never a link of either kind: a hard-linked file may be a file from outside the mount under a second name.
        tree = Confined.at(mount.path, single_link=True)
        try:
            if data is None:
                data, st = tree.read_with_stat(full, self.max_bytes, follow=False)
            else:
                st = tree.lstat(full, follow=False)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PathDenied):
            return self.remove_file(mount, relpath, source="delete")
        except OSError as exc:
            return self._skip(mount, relpath, None, "unreadable", exc.strerror or str(exc))
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            return self.remove_file(mount, relpath, source="delete")
        if st.st_size > self.max_bytes:
            return self._skip(mount, relpath, st, "too large", f"{st.st_size} bytes > {self.max_bytes}")
        if len(data) > self.max_bytes:
            return self._skip(mount, relpath, st, "too large", f"over {self.max_bytes} bytes")
        digest = hashlib.sha256(data).hexdigest()
        row = self.db.one(
            "SELECT id, sha256, skipped FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, relpath)
        )
        if row is not None and row["sha256"] == digest and not row["skipped"]:
            with self.db.tx() as conn:
                conn.execute(
                    "UPDATE semfs_files SET size = ?, mtime = ? WHERE id = ?", (st.st_size, st.st_mtime, row["id"])
                )
                _add_version(conn, mount.id, relpath, digest, len(data), source)  # e.g. a rollback to equal bytes
            return IndexOutcome(relpath, "unchanged")
        try:
            extracted = extract(relpath, data)
            chunks = chunk_text(extracted.text, extracted.kind)
            kind, skipped = extracted.kind, None
        except ExtractError as exc:
            chunks, kind, skipped = [], kind_of(relpath), exc.reason
        except Exception as exc:  # a broken document must not stop the indexer
            log.warning("extracting %s failed: %s", full, exc)
            chunks, kind, skipped = [], kind_of(relpath), "unreadable"
        return self._apply(mount, relpath, st, data, digest, kind, chunks, skipped, source)

    def _skip(self, mount: Mount, relpath: str, st: os.stat_result | None, reason: str, detail: str) -> IndexOutcome:
        log.info("skipping %s/%s: %s (%s)", mount.path, relpath, reason, detail)
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT id FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, relpath)
            ).fetchone()
            if row is not None:
                ids = [r[0] for r in conn.execute("SELECT id FROM semfs_chunks WHERE file_id = ?", (row[0],))]
                _delete_chunks(conn, ids)
            self._upsert_file(conn, mount, relpath, st, None, kind_of(relpath), reason)
        return IndexOutcome(relpath, "skipped", reason=f"{reason} ({detail})")

    @staticmethod
    def _upsert_file(
        conn: sqlite3.Connection,
        mount: Mount,
        relpath: str,
        st: os.stat_result | None,
        digest: str | None,
        kind: str,
        skipped: str | None,
    ) -> int:
        values = (
            kind,
            os.path.splitext(relpath)[1].lower(),
            st.st_size if st else 0,
            st.st_mtime if st else 0.0,
            digest,
            time.time(),
            skipped,
        )
        cur = conn.execute(
            "UPDATE semfs_files SET kind = ?, ext = ?, size = ?, mtime = ?, sha256 = ?, indexed_at = ?, skipped = ? "
            "WHERE mount_id = ? AND relpath = ?",
            (*values, mount.id, relpath),
        )
        if cur.rowcount:
            return int(
                conn.execute(
                    "SELECT id FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, relpath)
                ).fetchone()[0]
            )
        cur = conn.execute(
            "INSERT INTO semfs_files (kind, ext, size, mtime, sha256, indexed_at, skipped, mount_id, relpath) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, mount.id, relpath),
        )
        return int(cur.lastrowid or 0)

    def _apply(
        self,
        mount: Mount,
        relpath: str,
        st: os.stat_result,
        data: bytes,
        digest: str,
        kind: str,
        chunks: list[Chunk],
        skipped: str | None,
        source: str,
    ) -> IndexOutcome:
        now = time.time()
        with self.db.tx() as conn:
            file_id = self._upsert_file(conn, mount, relpath, st, digest, kind, skipped)
            old = conn.execute("SELECT id, chunk_hash FROM semfs_chunks WHERE file_id = ?", (file_id,)).fetchall()
            by_hash: dict[str, list[int]] = {}
            for cid, chash in old:
                by_hash.setdefault(chash, []).append(cid)
            added = 0
            for seq, chunk in enumerate(chunks):
                reuse = by_hash.get(chunk.hash)
                if reuse:
                    cid = reuse.pop()
                    conn.execute(
                        "UPDATE semfs_chunks SET seq = ?, start_line = ?, end_line = ? WHERE id = ?",
                        (seq, chunk.start_line, chunk.end_line, cid),
                    )
                    continue
                cur = conn.execute(
                    "INSERT INTO semfs_chunks (file_id, seq, chunk_hash, heading, text, start_line, end_line) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (file_id, seq, chunk.hash, chunk.heading, chunk.text, chunk.start_line, chunk.end_line),
                )
                cid = int(cur.lastrowid or 0)
                conn.execute(
                    "INSERT INTO semfs_fts (rowid, text, heading, path) VALUES (?, ?, ?, ?)",
                    (cid, chunk.text, chunk.heading, _path_words(relpath)),
                )
                conn.execute("INSERT INTO semfs_outbox (op, chunk_id, created_at) VALUES ('upsert', ?, ?)", (cid, now))
                added += 1
            stale = [cid for ids in by_hash.values() for cid in ids]
            _delete_chunks(conn, stale)
            store_blob(conn, data)
            _add_version(conn, mount.id, relpath, digest, len(data), source)
        if skipped:
            return IndexOutcome(relpath, "skipped", 0, len(stale), reason=skipped)
        return IndexOutcome(relpath, "indexed", added, len(stale))

    def remove_file(self, mount: Mount, relpath: str, *, source: str = "delete") -> IndexOutcome:
        """The file is gone: drop its chunks (vectors via the outbox) and record a deletion version."""
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT id FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, relpath)
            ).fetchone()
            if row is None:
                return IndexOutcome(relpath, "missing")
            ids = [r[0] for r in conn.execute("SELECT id FROM semfs_chunks WHERE file_id = ?", (row[0],))]
            _delete_chunks(conn, ids)
            conn.execute("DELETE FROM semfs_files WHERE id = ?", (row[0],))
            _add_version(conn, mount.id, relpath, None, 0, source)
        return IndexOutcome(relpath, "deleted", chunks_removed=len(ids))

    def move_file(self, mount: Mount, src: str, dst: str) -> IndexOutcome:
        """A rename inside one mount: keep the chunks (and their vectors) when the content is unchanged."""
        row = self.db.one("SELECT id, sha256 FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, src))
        if row is None:
            return self.index_file(mount, dst, source="move")
        try:
            data, _ = Confined.at(mount.path).read_with_stat(mount.path / dst, self.max_bytes, follow=False)
        except (OSError, PathDenied):
            self.remove_file(mount, src)
            return self.index_file(mount, dst, source="move")
        digest = hashlib.sha256(data).hexdigest()
        taken = self.db.one("SELECT id FROM semfs_files WHERE mount_id = ? AND relpath = ?", (mount.id, dst))
        if digest != row["sha256"] or taken is not None:
            self.remove_file(mount, src)
            return self.index_file(mount, dst, source="move", data=data)
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE semfs_files SET relpath = ?, ext = ?, indexed_at = ? WHERE id = ?",
                (dst, os.path.splitext(dst)[1].lower(), time.time(), row["id"]),
            )
            for (cid,) in conn.execute("SELECT id FROM semfs_chunks WHERE file_id = ?", (row["id"],)).fetchall():
                conn.execute("UPDATE semfs_fts SET path = ? WHERE rowid = ?", (_path_words(dst), cid))
            _add_version(conn, mount.id, src, None, 0, "move")
            _add_version(conn, mount.id, dst, digest, len(data), "move")
        return IndexOutcome(dst, "indexed")


def _path_words(relpath: str) -> str:
    """The path as FTS sees it: separators and punctuation become spaces so file names are searchable."""
    return relpath.replace("/", " ").replace("_", " ").replace("-", " ").replace(".", " ")
