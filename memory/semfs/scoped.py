"""``ScopedFS``: the semantic file system as one caller may see it.

The kernel hands every ``fs.*`` syscall (and every step of a plan) a ``ScopedFS`` built from the caller's
file grants. Each path is checked lexically against the grants and then opened *beneath* the covering grant
(``aios.confined``): the check and the use are one open. Listings and searches cover only what the caller
may read (its *scopes*: whole mounts inside a read grant, or granted folders inside a mount). The user at
the terminal gets the widest grant ("/"), so the same code serves everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aios.confined import FileGrant, PathDenied, confine
from memory.semfs.db import Mount
from memory.semfs.search import Filters, Hit, Mode

if TYPE_CHECKING:
    from memory.semfs.core import SemFS
    from memory.semfs.db import SemDB
    from memory.semfs.indexer import IndexOutcome

__all__ = ["ScopedFS"]


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class ScopedFS:
    fs: SemFS
    grants: tuple[FileGrant, ...]

    @classmethod
    def of(cls, fs: SemFS, read: Sequence[str | Path], write: Sequence[str | Path]) -> ScopedFS:
        return cls(fs, tuple([FileGrant.of(r) for r in read] + [FileGrant.of(w, write=True) for w in write]))

    @property
    def db(self) -> SemDB:
        return self.fs.db

    # -- the grant behind each path -------------------------------------------------------------

    def root_for(self, path: str | Path, *, write: bool = False) -> Path:
        """The granted folder that covers ``path`` (the deepest one), or PathDenied."""
        return confine(self.grants, str(path), write=write)[0].root

    def may(self, path: str | Path, *, write: bool = False) -> bool:
        try:
            self.root_for(path, write=write)
        except PathDenied:
            return False
        return True

    def scopes(self) -> list[tuple[Mount, Path]]:
        """The folders this caller may read, per mount: the mount root when a read grant covers it, else each
        granted folder inside it."""
        out: list[tuple[Mount, Path]] = []
        for mount in self.fs.db.mounts():
            if any(_within(mount.path, g.root) for g in self.grants):
                out.append((mount, mount.path))
            else:
                out.extend(
                    (mount, root) for root in sorted({g.root for g in self.grants if _within(g.root, mount.path)})
                )
        return out

    def _filters(self, filters: Filters, scopes: list[tuple[Mount, Path]]) -> Filters:
        pairs = tuple((m.id, s.relative_to(m.path).as_posix() if s != m.path else "") for m, s in scopes)
        return replace(filters, within=pairs)

    # -- reading ---------------------------------------------------------------------------------

    def search(self, query: str, *, k: int = 10, filters: Filters | None = None, mode: Mode = "hybrid") -> list[Hit]:
        filters = filters or Filters()
        scopes = self.scopes()
        if filters.mount:
            scopes = [(m, s) for m, s in scopes if m.name == filters.mount]
        if not scopes:
            return []
        return self.fs.search(query, k=k, filters=self._filters(filters, scopes), mode=mode)

    def ls(self, target: str | None = None) -> list[dict[str, Any]]:
        """What ``SemFS.ls`` lists, narrowed to the files this caller may read."""
        return [row for row in self.fs.ls(target) if self.may(row["path"])]

    def cat(self, path: str | Path, version: int | None = None) -> bytes:
        return self.fs.cat(path, version, within=self.root_for(path))

    def history(self, path: str | Path) -> list[dict[str, Any]]:
        self.root_for(path)
        return self.fs.history(path)

    def diff(self, path: str | Path, a: int = -1, b: int = 0) -> str:
        self.root_for(path)
        return self.fs.diff(path, a, b)

    def resolve(self, path: str | Path) -> tuple[Mount, str]:
        return self.fs.resolve(path)

    # -- changing --------------------------------------------------------------------------------

    def write(self, path: str | Path, data: bytes, *, source: str = "write") -> IndexOutcome:
        return self.fs.write(path, data, source=source, within=self.root_for(path, write=True))

    def delete(self, path: str | Path) -> IndexOutcome:
        return self.fs.delete(path, within=self.root_for(path, write=True))

    def rollback(self, path: str | Path, *, steps: int | None = None, at: float | None = None) -> dict[str, Any]:
        return self.fs.rollback(path, steps=steps, at=at, within=self.root_for(path, write=True))

    def mount(self, path: str | Path, name: str | None = None) -> Mount:
        return self.fs.mount(path, name, within=self.root_for(path, write=True))

    def index(self, path: str | Path) -> dict[str, Any]:
        return dict(self.fs.index(path, within=self.root_for(path, write=True)))
