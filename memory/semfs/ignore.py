"""Which files of a mount are indexed: ``.gitignore`` rules (pathspec) plus aios's defaults."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pathspec

__all__ = ["DEFAULT_IGNORES", "MAX_FILE_BYTES", "IgnoreRules"]

log = logging.getLogger(__name__)

#: Skipped in every mount: VCS metadata, virtualenvs, dependency and build caches, editor droppings.
DEFAULT_IGNORES = (
    ".git/",
    ".hg/",
    ".svn/",
    ".venv/",
    "venv/",
    ".tox/",
    "node_modules/",
    "__pycache__/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".DS_Store",
    "*.pyc",
    "*.swp",
    "*~",
    ".#*",
    ".aios-*",
)
#: Files above this size are recorded as skipped, not read (overridable per index call).
MAX_FILE_BYTES = 10 * 2**20


class IgnoreRules:
    """Matches paths relative to a mount root against the defaults and every ``.gitignore`` below it.

    A ``.gitignore`` applies to its own folder and below, as git does; patterns are matched relative to the
    folder holding the file.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._default = pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORES)
        self._specs: dict[str, pathspec.GitIgnoreSpec] = {}
        self._loaded: set[str] = set()

    def _spec_for(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._loaded:
            self._loaded.add(folder)
            path = self.root / folder / ".gitignore" if folder else self.root / ".gitignore"
            try:
                lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                lines = None
            if lines:
                self._specs[folder] = pathspec.GitIgnoreSpec.from_lines(lines)
        return self._specs.get(folder)

    def reset(self) -> None:
        """Forget every cached ``.gitignore`` (before a full walk)."""
        self._loaded.clear()
        self._specs.clear()

    def invalidate(self, relpath: str) -> None:
        """Forget a cached ``.gitignore`` after it changed."""
        folder = os.path.dirname(relpath)
        self._loaded.discard(folder)
        self._specs.pop(folder, None)

    def ignored(self, relpath: str, *, is_dir: bool = False) -> bool:
        rel = relpath.replace(os.sep, "/").strip("/")
        if not rel:
            return False
        probe = rel + "/" if is_dir else rel
        if self._default.match_file(probe):
            return True
        parts = rel.split("/")
        # Each .gitignore on the way down applies to the path relative to its own folder ("build/" there
        # also matches every file below build/).
        for depth in range(len(parts)):
            spec = self._spec_for("/".join(parts[:depth]))
            if spec is not None and spec.match_file("/".join(parts[depth:]) + ("/" if is_dir else "")):
                return True
        return False

    def walk(self) -> list[str]:
        """Every non-ignored regular file below the root, as sorted relative paths (symlinks not followed)."""
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False, onerror=_log_walk_error):
            rel_dir = os.path.relpath(dirpath, self.root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
            dirnames[:] = sorted(
                d for d in dirnames if not self.ignored(f"{rel_dir}/{d}" if rel_dir else d, is_dir=True)
            )
            for name in filenames:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                if not self.ignored(rel):
                    found.append(rel)
        return sorted(found)


def _log_walk_error(exc: OSError) -> None:
    log.warning("cannot read folder %s: %s", exc.filename, exc.strerror)
