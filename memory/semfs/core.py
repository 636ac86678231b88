"""``SemFS``: the semantic file system's one entry point (mounts, indexing, watching, search, versions).

Used by the kernel service (which also runs the watcher and the background embedder) and by `aios fs`
commands when no kernel is running. Blocking: async callers run it in a worker thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aios import paths
from aios.confined import Confined, PathDenied
from aios.errors import UsageError
from memory.semfs.db import Mount, NotIndexed, SemDB
from memory.semfs.ignore import IgnoreRules
from memory.semfs.indexer import Indexer, IndexOutcome
from memory.semfs.search import Filters, Hit, Mode, Searcher
from memory.semfs.vectors import Vectors
from memory.semfs.versions import Versions
from memory.semfs.watcher import Change, Watcher

__all__ = ["IndexStats", "SemFS"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def tree_of(mount: Mount, within: Path | None = None) -> Confined:
    """The tree a file access in ``mount`` may not leave: the mount, narrowed to ``within`` (the caller's grant).

    Whichever of the two lies deeper is the tree; the shallower one is the anchor opened by its path, and the
    way between them is resolved with no symbolic links (so a caller who may write in the anchor cannot turn
    the folder on that way into a link).
    """
    # A caller confined to a grant (anyone but the user, whose grant is "/") never opens a file with several
    # hard links: it may be a file from outside the grant under a second name.
    strict = within is not None and within != Path("/")
    if within is None or mount.path == within or mount.path.is_relative_to(within):
        return Confined.at(mount.path, anchor=within, single_link=strict)
    if within.is_relative_to(mount.path):
        return Confined.at(within, anchor=mount.path, single_link=strict)
    raise PathDenied(f"mount '{mount.name}' ({mount.path}) is not inside the granted folder {within}")


class IndexStats(dict[str, Any]):
    """Counts and rates of one indexing pass (files/s and chunks/s of the keyword-searchable pass)."""


class SemFS:
    def __init__(
        self,
        *,
        db_path: Path | None = None,
        chroma_path: Path | None = None,
        writer: bool = True,
        debounce_s: float = 0.2,
        chroma_url: str = "",
    ) -> None:
        self.db = SemDB(db_path or paths.db_path())
        if writer:
            self.db.acquire_writer()
        self.writer = writer
        self.vectors = Vectors(self.db, chroma_path or paths.chroma_dir(), chroma_url=chroma_url)
        self.indexer = Indexer(self.db)
        self.versions = Versions(self.db, self.indexer)
        self.searcher = Searcher(self.db, self.vectors)
        self._rules: dict[int, IgnoreRules] = {}
        self._debounce_s = debounce_s
        self.watcher: Watcher | None = None
        self._embedder: threading.Thread | None = None
        self._reconciler: threading.Thread | None = None
        self._closing = threading.Event()
        #: Set by each completed change batch: tests and the benchmark wait on it.
        self.changes_applied = threading.Condition()
        self.change_count = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start_background(
        self, *, watch: bool = True, embed: bool = True, wait: bool = True, llm_busy: Callable[[], bool] | None = None
    ) -> None:
        """Watch every mount, reconcile each against the database, and fill vectors in the background.

        The watcher starts before reconciliation so no change made meanwhile is missed. With ``wait=False``
        reconciliation runs in its own thread (the kernel does not wait for it at boot).
        """
        self._need_writer()
        if embed and self._embedder is None:
            self._embedder = threading.Thread(
                target=self.vectors.run_background, args=(llm_busy,), name="aios-semfs-embed", daemon=True
            )
            self._embedder.start()
        if watch and self.watcher is None:
            self.watcher = Watcher(self._apply_changes, debounce_s=self._debounce_s)
            for mount in self.db.mounts():
                self.watcher.watch(mount)
            self.watcher.start()
        if wait:
            self._reconcile_all()
        else:
            self._reconciler = threading.Thread(target=self._reconcile_all, name="aios-semfs-reconcile", daemon=True)
            self._reconciler.start()

    def _reconcile_all(self) -> None:
        for mount in self.db.mounts():
            if self._closing.is_set():
                return
            try:
                self.reconcile(mount)
            except Exception:
                log.exception("reconciling mount %s failed", mount.name)

    def close(self) -> None:
        self._closing.set()
        if self._reconciler is not None:
            self._reconciler.join(timeout=60)
            self._reconciler = None
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.vectors.stopping.set()
        self.vectors.wake.set()
        if self._embedder is not None:
            self._embedder.join(timeout=30)
            self._embedder = None
        self.db.close()

    def __enter__(self) -> SemFS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _need_writer(self) -> None:
        if not self.writer:
            raise UsageError("this semantic FS handle is read-only")

    def _rules_for(self, mount: Mount) -> IgnoreRules:
        if mount.id not in self._rules:
            self._rules[mount.id] = IgnoreRules(mount.path)
        return self._rules[mount.id]

    # -- mounts ----------------------------------------------------------------------------------

    def mount(self, path: str | Path, name: str | None = None, *, within: Path | None = None) -> Mount:
        """Mount a folder. With ``within`` (a caller's grant), the folder is opened beneath it with no symbolic
        link on the way, and the mount is made at the path read off that fd: never a folder outside it."""
        self._need_writer()
        if within is not None:
            try:
                folder = Path(path).expanduser().as_posix().rstrip("/") + "/"
                real = Confined.at(within).realpath(folder, follow=False)
            except (FileNotFoundError, NotADirectoryError):
                raise UsageError(f"cannot mount {path}: not a folder") from None
            mount = self.db.add_mount(real, name, resolved=True)
        else:
            mount = self.db.add_mount(Path(path), name)
        if self.watcher is not None:
            self.watcher.watch(mount)
        return mount

    def find_mount(self, name_or_path: str) -> Mount:
        for mount in self.db.mounts():
            if name_or_path == mount.name:
                return mount
        try:
            resolved = Path(name_or_path).expanduser().resolve()
        except OSError:
            resolved = None
        for mount in self.db.mounts():
            if resolved == mount.path:
                return mount
        raise NotIndexed(f"no mount '{name_or_path}'", "see `aios fs mounts`")

    def unmount(self, name_or_path: str) -> dict[str, Any]:
        """Forget a mount's index (chunks, and vectors through the outbox). Its version history is archived, not
        dropped: mounting the same folder again restores it. The folder itself is not touched."""
        self._need_writer()
        mount = self.find_mount(name_or_path)
        if self.watcher is not None:
            self.watcher.unwatch(mount.id)
        now = time.time()
        with self.db.tx() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT c.id FROM semfs_chunks c JOIN semfs_files f ON f.id = c.file_id WHERE f.mount_id = ?",
                    (mount.id,),
                )
            ]
            for cid in ids:
                conn.execute("DELETE FROM semfs_fts WHERE rowid = ?", (cid,))
                conn.execute("INSERT INTO semfs_outbox (op, chunk_id, created_at) VALUES ('delete', ?, ?)", (cid, now))
            # The version history is kept (by absolute path) and comes back if the folder is mounted again.
            kept = conn.execute(
                "INSERT INTO semfs_version_archive (path, sha256, size, created_at, source, archived_at) "
                "SELECT ? || '/' || relpath, sha256, size, created_at, source, ? FROM semfs_versions "
                "WHERE mount_id = ? ORDER BY id",
                (str(mount.path), now, mount.id),
            ).rowcount
            conn.execute("DELETE FROM semfs_mounts WHERE id = ?", (mount.id,))
        self._rules.pop(mount.id, None)
        self.vectors.wake.set()
        return {
            "name": mount.name,
            "path": str(mount.path),
            "chunks_removed": len(ids),
            "versions_kept": kept,
        }

    def mounts(self) -> list[dict[str, Any]]:
        out = []
        for mount in self.db.mounts():
            info = mount.info()
            row = self.db.one(
                "SELECT count(*) AS files, sum(skipped IS NOT NULL) AS skipped FROM semfs_files WHERE mount_id = ?",
                (mount.id,),
            )
            info["files"] = row["files"] if row else 0
            info["skipped"] = (row["skipped"] if row else 0) or 0
            info["chunks"] = self.db.scalar(
                "SELECT count(*) FROM semfs_chunks c JOIN semfs_files f ON f.id = c.file_id WHERE f.mount_id = ?",
                (mount.id,),
            )
            info["vectors_pending"] = self.db.scalar(
                "SELECT count(*) FROM semfs_chunks c JOIN semfs_files f ON f.id = c.file_id "
                "WHERE f.mount_id = ? AND c.embedded = 0",
                (mount.id,),
            )
            info["reconciled_at"] = mount.reconciled_at
            out.append(info)
        return out

    # -- indexing --------------------------------------------------------------------------------

    def index(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        progress: Progress | None = None,
        within: Path | None = None,
    ) -> IndexStats:
        """Index a folder in the foreground (mounting it if needed); keyword-searchable when this returns."""
        self._need_writer()
        path = Path(path).expanduser()
        try:
            mount, rel = self.db.resolve(path)
        except NotIndexed:
            mount, rel = self.mount(path, name, within=within), ""
        if within is not None and rel:
            try:  # a real file or folder inside the grant, no link on the way
                tree_of(mount, within).realpath(mount.path / rel, follow=False)
            except (FileNotFoundError, NotADirectoryError):
                raise UsageError(f"cannot index {path}: no such file or folder") from None
        return self.reconcile(mount, under=rel, progress=progress)

    def reconcile(self, mount: Mount, *, under: str = "", progress: Progress | None = None) -> IndexStats:
        """Bring the index of ``mount`` (or a folder below it) in line with the disk: new, changed, deleted files.

        Unchanged files (same size and mtime) are not read. A missing mount root is reported, and its index is
        kept (an unplugged drive must not erase its history).
        """
        self._need_writer()
        started = time.monotonic()
        stats = IndexStats(
            mount=mount.name,
            files=0,
            indexed=0,
            unchanged=0,
            skipped=0,
            deleted=0,
            chunks_added=0,
            chunks_removed=0,
            missing_root=False,
        )
        if not mount.present:
            log.warning("mount %s: %s is missing; keeping its index", mount.name, mount.path)
            stats["missing_root"] = True
            return stats
        rules = self._rules_for(mount)
        rules.reset()
        root = mount.path / under if under else mount.path
        if under and root.is_file():
            on_disk = [] if rules.ignored(under) else [under]
        elif under:
            on_disk = [r for r in (f"{under}/{x}" for x in IgnoreRules(root).walk()) if not rules.ignored(r)]
        else:
            on_disk = rules.walk()
        known = {
            r["relpath"]: r
            for r in self.db.q("SELECT relpath, size, mtime, skipped FROM semfs_files WHERE mount_id = ?", (mount.id,))
            if not under or r["relpath"] == under or r["relpath"].startswith(under + "/")
        }
        total = len(on_disk)
        for i, rel in enumerate(on_disk, start=1):
            if self._closing.is_set():
                return stats  # shutting down; the next start reconciles again
            row = known.pop(rel, None)
            try:
                st = os.lstat(mount.path / rel)
            except OSError:
                st = None
            if row is not None and st is not None and row["size"] == st.st_size and row["mtime"] == st.st_mtime:
                stats["unchanged"] += 1
            else:
                self._count(stats, self.indexer.index_file(mount, rel, source="index"))
            stats["files"] += 1
            if progress:
                progress(i, total, rel)
        for rel in known:  # in the index, gone from disk (or now ignored)
            self._count(stats, self.indexer.remove_file(mount, rel))
        with self.db.tx() as conn:
            conn.execute("UPDATE semfs_mounts SET reconciled_at = ? WHERE id = ?", (time.time(), mount.id))
            # Repair: a chunk without a vector and without pending work (an outbox row lost to a crash of an
            # older build, or a reset collection) gets queued again.
            conn.execute(
                "INSERT INTO semfs_outbox (op, chunk_id, created_at) SELECT 'upsert', c.id, ? FROM semfs_chunks c "
                "JOIN semfs_files f ON f.id = c.file_id WHERE f.mount_id = ? AND c.embedded = 0 AND NOT EXISTS "
                "(SELECT 1 FROM semfs_outbox o WHERE o.chunk_id = c.id AND o.op = 'upsert')",
                (time.time(), mount.id),
            )
        elapsed = max(time.monotonic() - started, 1e-9)
        stats["seconds"] = round(elapsed, 3)
        stats["files_per_s"] = round(stats["files"] / elapsed, 1)
        stats["chunks_per_s"] = round(stats["chunks_added"] / elapsed, 1)
        self.vectors.wake.set()
        return stats

    @staticmethod
    def _count(stats: IndexStats, outcome: IndexOutcome) -> None:
        key = {"indexed": "indexed", "unchanged": "unchanged", "skipped": "skipped", "deleted": "deleted"}
        if outcome.outcome in key:
            stats[key[outcome.outcome]] += 1
        stats["chunks_added"] += outcome.chunks_added
        stats["chunks_removed"] += outcome.chunks_removed

    def embed_pending(self, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Fill every pending vector now (foreground); returns how many outbox rows were applied."""
        return self.vectors.drain(progress=progress)

    def _apply_changes(self, batch: list[Change]) -> None:
        current = {m.id: m for m in self.db.mounts()}
        for mount, rel, dest, is_dir, _deleted in batch:
            mount = current.get(mount.id)  # type: ignore[assignment]
            if mount is None:
                continue  # unmounted meanwhile
            rules = self._rules_for(mount)
            for changed in (rel, dest):
                if changed and changed.rsplit("/", 1)[-1] == ".gitignore":
                    rules.invalidate(changed)
            if is_dir:
                # A folder appeared, vanished or moved: reconcile what is below each side.
                for side in (rel, dest):
                    if side and not rules.ignored(side, is_dir=True):
                        self.reconcile(mount, under=side)
                continue
            if dest is not None:
                if rules.ignored(dest):
                    self.indexer.remove_file(mount, rel)
                elif rules.ignored(rel):
                    self.indexer.index_file(mount, dest, source="watch")
                else:
                    self.indexer.move_file(mount, rel, dest)
                continue
            if not rules.ignored(rel):
                self.indexer.index_file(mount, rel, source="watch")
        self.vectors.wake.set()
        with self.changes_applied:
            self.change_count += 1
            self.changes_applied.notify_all()

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: str, *, k: int = 10, filters: Filters | None = None, mode: Mode = "hybrid") -> list[Hit]:
        return self.searcher.search(query, k=k, filters=filters, mode=mode)

    def resolve(self, path: str | Path) -> tuple[Mount, str]:
        return self.db.resolve(path)

    def ls(self, target: str | None = None) -> list[dict[str, Any]]:
        """Files of a mount, a folder inside one, or a view (``@VIEW``); all mounts' files when ``None``."""
        sql = (
            "SELECT f.id, f.relpath, f.kind, f.size, f.mtime, f.skipped, m.name AS mount, m.path AS root "
            "FROM semfs_files f JOIN semfs_mounts m ON m.id = f.mount_id"
        )
        if target and target.startswith("@"):
            view = target[1:]
            if self.db.one("SELECT name FROM semfs_views WHERE name = ?", (view,)) is None:
                raise NotIndexed(f"no view named '@{view}'", "see `aios fs group`")
            rows = self.db.q(
                sql.replace("SELECT f.id", "SELECT v.grp AS grp, f.id")
                + " JOIN semfs_view_files v ON v.file_id = f.id WHERE v.view = ? ORDER BY v.grp, v.score DESC",
                (view,),
            )
        elif target:
            try:
                mount, rel = self.find_mount(target), ""
            except NotIndexed:
                mount, rel = self.db.resolve(target)
            rows = self.db.q(
                sql + " WHERE f.mount_id = ? AND (? = '' OR f.relpath = ? OR f.relpath LIKE ? || '/%') "
                "ORDER BY f.relpath",
                (mount.id, rel, rel, rel),
            )
        else:
            rows = self.db.q(sql + " ORDER BY m.name, f.relpath")
        for row in rows:
            row["path"] = f"{row.pop('root')}/{row['relpath']}"
        return rows

    def cat(self, path: str | Path, version: int | None = None, *, within: Path | None = None) -> bytes:
        mount, rel = self.db.resolve(path)
        if version is None:
            try:
                return tree_of(mount, within).read(mount.path / rel)
            except OSError as exc:
                raise UsageError(f"cannot read {mount.path / rel}: {exc.strerror or exc}") from None
        history = self.versions.history(mount, rel)
        if not history:
            raise NotIndexed(f"no versions recorded for {mount.path / rel}")
        return self.versions.content(self.versions.pick(history, version)["sha256"])

    def history(self, path: str | Path) -> list[dict[str, Any]]:
        mount, rel = self.db.resolve(path)
        history = self.versions.history(mount, rel)
        if not history:
            raise NotIndexed(f"no versions recorded for {mount.path / rel}", "is it inside a mount and indexed?")
        return history

    def diff(self, path: str | Path, a: int = -1, b: int = 0) -> str:
        mount, rel = self.db.resolve(path)
        return self.versions.diff(mount, rel, a, b)

    def write(
        self, path: str | Path, data: bytes, *, source: str = "write", within: Path | None = None
    ) -> IndexOutcome:
        self._need_writer()
        mount, rel = self.db.resolve(path)
        outcome = self.versions.write(mount, rel, data, source=source, tree=tree_of(mount, within))
        self.vectors.wake.set()
        return outcome

    def delete(self, path: str | Path, *, within: Path | None = None) -> IndexOutcome:
        self._need_writer()
        mount, rel = self.db.resolve(path)
        outcome = self.versions.delete(mount, rel, tree=tree_of(mount, within))
        self.vectors.wake.set()
        return outcome

    def rollback(
        self, path: str | Path, *, steps: int | None = None, at: float | None = None, within: Path | None = None
    ) -> dict[str, Any]:
        self._need_writer()
        mount, rel = self.db.resolve(path)
        result = self.versions.rollback(mount, rel, steps=steps, at=at, tree=tree_of(mount, within))
        self.vectors.wake.set()
        return result

    def progress_line(self) -> str:
        """One short line for a status bar: files indexed and vectors still pending (empty with no mounts)."""
        if not self.db.mounts():
            return ""
        files = self.db.scalar("SELECT count(*) FROM semfs_files")
        pending = self.vectors.pending()
        return f"files {files} · embedding {pending} chunks…" if pending else f"files {files} indexed"

    def status(self) -> dict[str, Any]:
        return {
            "mounts": len(self.db.mounts()),
            "files": self.db.scalar("SELECT count(*) FROM semfs_files"),
            "chunks": self.db.scalar("SELECT count(*) FROM semfs_chunks"),
            "vectors_pending": self.vectors.pending(),
            "watching": self.watcher is not None,
        }
