"""The semantic FS's SQLite connection, its writer lock, and mount bookkeeping.

The semantic FS opens its own connection to ``aios.db`` (WAL) and applies its own migration set, so it works
in the kernel and in a CLI process alike. One lock serialises every statement on the connection: the watcher,
the embedder and callers run in different threads. Across processes, only the holder of the writer lock file
(``semfs.lock`` in the data dir) changes the index.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from aios.errors import AiosError, UsageError
from memory.semfs.migrations import migrations

__all__ = ["Mount", "NotIndexed", "SemDB", "WriterBusy"]


class WriterBusy(AiosError):
    """Another aios process is writing the semantic FS index."""


class NotIndexed(UsageError):
    """A path outside every mount, or a name/view that does not exist."""


@dataclass(frozen=True)
class Mount:
    id: int
    name: str
    path: Path
    created_at: float
    reconciled_at: float | None

    @property
    def present(self) -> bool:
        return self.path.is_dir()

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path), "present": self.present}


class SemDB:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.lock = threading.RLock()
        with self.lock:
            migrations.apply(self.db)
        self._lockfile: int | None = None
        #: The mounts as of the last write transaction (the writer process only: it alone changes them).
        self._mounts: list[Mount] | None = None

    # -- statements ------------------------------------------------------------------------------

    def q(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self.lock:
            cur = self.db.conn.execute(sql, params)
            cols = [d[0] for d in cur.description or ()]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        rows = self.q(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Any = ()) -> Any:
        with self.lock:
            row = self.db.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE .. COMMIT, rolled back on error) under the lock."""
        with self.lock:
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            self._mounts = None
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        self.release_writer()
        with self.lock:
            self.db.conn.close()

    # -- the cross-process writer lock ----------------------------------------------------------

    def acquire_writer(self) -> None:
        if self._lockfile is not None:
            return
        fd = os.open(self.path.parent / "semfs.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise WriterBusy(
                "another aios process (a kernel, e.g. the TUI, or an `aios fs` command) is writing the file index",
                'wait for it to finish, or ask that kernel: `aios run files "…"` or the files agent in the TUI',
            ) from None
        self._lockfile = fd

    def release_writer(self) -> None:
        if self._lockfile is not None:
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
            os.close(self._lockfile)
            self._lockfile = None

    # -- mounts --------------------------------------------------------------------------------

    def mounts(self) -> list[Mount]:
        cached = self._mounts
        if cached is not None:
            return list(cached)
        with self.lock:  # filled under the lock, so a write transaction cannot interleave and leave it stale
            rows = self.q("SELECT * FROM semfs_mounts ORDER BY name")
            found = [Mount(r["id"], r["name"], Path(r["path"]), r["created_at"], r["reconciled_at"]) for r in rows]
            if self._lockfile is not None:  # only the writer may trust a cache: nobody else changes the table
                self._mounts = found
        return list(found)

    def mount_by_name(self, name: str) -> Mount:
        for mount in self.mounts():
            if mount.name == name:
                return mount
        known = ", ".join(m.name for m in self.mounts()) or "none"
        raise NotIndexed(f"no mount named '{name}' (mounts: {known})", "see `aios fs mounts`")

    def add_mount(self, path: Path, name: str | None, *, resolved: bool = False) -> Mount:
        """Register a mount (``resolved``: ``path`` is already the real path, read off an fd; not re-resolved, so a
        folder swapped for a link meanwhile cannot redirect it). Versions archived by an earlier unmount of
        the same folder come back."""
        root = path if resolved else path.expanduser().resolve()
        if not root.is_dir():
            raise UsageError(f"cannot mount {path}: not a folder")
        for mount in self.mounts():
            if mount.path == root:
                return mount
            if root.is_relative_to(mount.path) or mount.path.is_relative_to(root):
                raise UsageError(f"cannot mount {root}: it overlaps mount '{mount.name}' ({mount.path})")
        name = name or root.name or "root"
        if any(m.name == name for m in self.mounts()):
            raise UsageError(f"a mount named '{name}' already exists", "pick another with --name")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise UsageError(f"mount name '{name}' may hold only letters, digits, '-', '_' and '.'")
        with self.tx() as conn:
            mount_id = conn.execute(
                "INSERT INTO semfs_mounts (name, path, created_at) VALUES (?, ?, ?)", (name, str(root), time.time())
            ).lastrowid
            prefix = str(root).rstrip("/") + "/"
            conn.execute(
                "INSERT INTO semfs_versions (mount_id, relpath, sha256, size, created_at, source) "
                "SELECT ?, substr(path, ?), sha256, size, created_at, source FROM semfs_version_archive "
                "WHERE substr(path, 1, ?) = ? ORDER BY id",
                (mount_id, len(prefix) + 1, len(prefix), prefix),
            )
            conn.execute("DELETE FROM semfs_version_archive WHERE substr(path, 1, ?) = ?", (len(prefix), prefix))
        return self.mount_by_name(name)

    def resolve(self, path: str | Path) -> tuple[Mount, str]:
        """The mount holding ``path`` and the path relative to it (``/``-separated)."""
        raw = Path(path).expanduser()
        full = Path(os.path.abspath(raw))
        for mount in self.mounts():
            for root in {mount.path, Path(os.path.abspath(mount.path))}:
                if full == root or full.is_relative_to(root):
                    rel = full.relative_to(root).as_posix()
                    return mount, "" if rel == "." else rel
        raise NotIndexed(f"{path} is not inside any mount", "mount its folder with `aios fs mount FOLDER`")
