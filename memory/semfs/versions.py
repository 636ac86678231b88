"""File versions: history, content by version, unified diffs, and the one write path (rollback uses it too)."""

from __future__ import annotations

import difflib
import zlib
from typing import Any

from aios.confined import Confined
from aios.errors import UsageError
from memory.semfs.db import Mount, NotIndexed, SemDB
from memory.semfs.indexer import Indexer, IndexOutcome

__all__ = ["Versions"]


class Versions:
    def __init__(self, db: SemDB, indexer: Indexer) -> None:
        self.db = db
        self.indexer = indexer

    def history(self, mount: Mount, relpath: str) -> list[dict[str, Any]]:
        """Every version of the path, oldest first, numbered from 1; ``deleted`` marks a removal."""
        rows = self.db.q(
            "SELECT id, sha256, size, created_at, source FROM semfs_versions WHERE mount_id = ? AND relpath = ? "
            "ORDER BY id",
            (mount.id, relpath),
        )
        return [
            {
                "version": n,
                "id": r["id"],
                "sha256": r["sha256"],
                "size": r["size"],
                "created_at": r["created_at"],
                "source": r["source"],
                "deleted": r["sha256"] is None,
            }
            for n, r in enumerate(rows, start=1)
        ]

    def _history_or_error(self, mount: Mount, relpath: str) -> list[dict[str, Any]]:
        history = self.history(mount, relpath)
        if not history:
            raise NotIndexed(f"no versions recorded for {mount.path / relpath}")
        return history

    def pick(self, history: list[dict[str, Any]], ref: int) -> dict[str, Any]:
        """Version ``ref``: 1..n counts from the oldest, 0 is the latest, -1 the one before it, and so on."""
        n = len(history)
        index = ref - 1 if ref > 0 else n - 1 + ref
        if not 0 <= index < n:
            raise UsageError(f"no version {ref} (this file has versions 1..{n}; 0 is the latest, -1 the one before)")
        return history[index]

    def content(self, sha256: str | None) -> bytes:
        if sha256 is None:
            return b""
        row = self.db.one("SELECT data FROM semfs_blobs WHERE sha256 = ?", (sha256,))
        if row is None:
            raise UsageError(f"version content {sha256[:12]}… is missing from the store (run `aios fs check`)")
        return zlib.decompress(row["data"])

    def diff(self, mount: Mount, relpath: str, a: int = -1, b: int = 0) -> str:
        history = self._history_or_error(mount, relpath)
        if len(history) < 2 and a == -1 and b == 0:
            return ""
        va, vb = self.pick(history, a), self.pick(history, b)
        text_a = self.content(va["sha256"]).decode("utf-8", errors="replace").splitlines(keepends=True)
        text_b = self.content(vb["sha256"]).decode("utf-8", errors="replace").splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(
                text_a, text_b, fromfile=f"{relpath}@{va['version']}", tofile=f"{relpath}@{vb['version']}"
            )
        )

    def write(
        self, mount: Mount, relpath: str, data: bytes, *, source: str = "write", tree: Confined | None = None
    ) -> IndexOutcome:
        """Write a file inside a mount atomically and index it at once, as one version.

        The file is created and renamed into place relative to a directory fd of ``tree`` (the mount, or a
        caller's grant inside it): no path is reopened by name, so no symlink leads the write out of it.
        """
        if not mount.present:
            raise UsageError(f"mount '{mount.name}' is not available ({mount.path} is missing)")
        if not relpath or relpath.startswith("../") or ".." in relpath.split("/"):
            raise UsageError(f"cannot write {relpath!r}: not a path inside the mount")
        target = mount.path / relpath
        try:
            (tree or Confined.at(mount.path)).write(target, data)
        except IsADirectoryError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror}") from None
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror}") from None
        return self.indexer.index_file(mount, relpath, source=source, data=data)

    def delete(self, mount: Mount, relpath: str, *, tree: Confined | None = None) -> IndexOutcome:
        target = mount.path / relpath
        try:
            (tree or Confined.at(mount.path)).unlink(target)
        except (FileNotFoundError, NotADirectoryError):
            raise UsageError(f"cannot delete {target}: no such file") from None
        except PermissionError as exc:
            raise UsageError(f"cannot delete {target}: {exc.strerror}") from None
        return self.indexer.remove_file(mount, relpath, source="delete")

    def rollback(
        self,
        mount: Mount,
        relpath: str,
        *,
        steps: int | None = None,
        at: float | None = None,
        tree: Confined | None = None,
    ) -> dict[str, Any]:
        """Restore an earlier version through ``write`` (so the rollback is a version too, and can be undone).

        ``steps=N`` goes N versions back from the latest; ``at=T`` restores the version current at time T. A
        deleted file is recreated; rolling back to a deletion removes the file.
        """
        if (steps is None) == (at is None):
            raise UsageError("rollback needs exactly one of --steps N or --at TIME")
        history = self._history_or_error(mount, relpath)
        if steps is not None:
            if steps < 1:
                raise UsageError("--steps must be 1 or more")
            if steps >= len(history):
                raise UsageError(f"cannot go back {steps} step(s): {relpath} has {len(history)} version(s)")
            target = history[-1 - steps]
        else:
            earlier = [v for v in history if v["created_at"] <= (at or 0)]
            if not earlier:
                raise UsageError(f"{relpath} has no version from that time (its first is later)")
            target = earlier[-1]
        current = history[-1]
        if target["sha256"] == current["sha256"]:
            return {"restored": target["version"], "changed": False, "path": str(mount.path / relpath)}
        if target["sha256"] is None:
            self.delete(mount, relpath, tree=tree)
        else:
            self.write(mount, relpath, self.content(target["sha256"]), source="rollback", tree=tree)
        return {"restored": target["version"], "changed": True, "path": str(mount.path / relpath)}
