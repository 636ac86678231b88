"""Confines file access to granted subtrees, race-free.

A path an agent sends is never trusted as a string. It is normalised lexically (so ``..`` cannot climb
above the grant), made relative to one granted root, and then opened one component at a time with
``openat``-style ``dir_fd`` walking and ``O_NOFOLLOW``: every directory is opened relative to the one
before it, so a symlink (or one swapped in after any check: the classic race) makes the open fail instead
of leading outside. Symlinks inside a grant are refused too; only regular files and directories are
opened (no devices, FIFOs or sockets).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aios.errors import PermissionDenied

__all__ = ["FileGrant", "PathDenied", "confine", "open_confined"]

_MAX_PATH = 4096


class PathDenied(PermissionDenied):
    """A path outside every grant, or one that cannot be opened safely."""


@dataclass(frozen=True)
class FileGrant:
    """A subtree an agent may read (and, with ``write``, change)."""

    root: Path
    write: bool = False

    @classmethod
    def of(cls, root: str | Path, *, write: bool = False) -> FileGrant:
        # The grant's own path is resolved once, when it is given (e.g. /tmp -> /private/tmp).
        return cls(Path(os.path.realpath(os.path.expanduser(str(root)))), write)


def confine(grants: Sequence[FileGrant], requested: str, *, write: bool = False) -> tuple[FileGrant, tuple[str, ...]]:
    """The grant covering ``requested`` and the path's components below its root; PathDenied otherwise.

    Relative paths are taken relative to the first grant. ``~`` is expanded (then it must be inside a
    grant like any other absolute path). This is the lexical half; ``open_confined`` does the rest.
    """
    if not requested or "\x00" in requested:
        raise PathDenied(f"invalid path {requested!r}")
    if len(requested.encode("utf-8", "surrogateescape")) > _MAX_PATH:
        raise PathDenied(f"path too long ({len(requested)} characters)")
    if not grants:
        raise PathDenied(f"no file access granted (asked for {requested!r})")
    text = os.path.expanduser(requested) if requested.startswith("~") else requested
    candidates = [g for g in grants if g.write or not write]
    if not candidates:
        raise PathDenied(f"no write access granted (asked to write {requested!r})")
    absolute = os.path.normpath(text if os.path.isabs(text) else os.path.join(grants[0].root, text))
    for grant in candidates:
        root = str(grant.root)
        if absolute == root or absolute.startswith(root.rstrip("/") + "/"):
            rest = absolute[len(root) :].strip("/")
            parts = tuple(p for p in rest.split("/") if p)
            if text.endswith("/") and parts:
                parts = (*parts[:-1], parts[-1] + "/")  # a trailing slash: it must be a directory
            return grant, parts
    where = "write" if write else "read"
    raise PathDenied(f"{requested!r} is outside the folders this agent may {where}")


@contextmanager
def open_confined(
    grants: Sequence[FileGrant], requested: str, flags: int = os.O_RDONLY, mode: int = 0o644
) -> Iterator[int]:
    """Open ``requested`` inside a grant without following any symlink; yield the fd (closed afterwards)."""
    write = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
    grant, parts = confine(grants, requested, write=write)
    fd = _walk(grant.root, parts, flags, mode, requested)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(root: Path, parts: tuple[str, ...], flags: int, mode: int, requested: str) -> int:
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, dir_flags)
    except OSError as exc:
        raise PathDenied(f"granted folder {root} cannot be opened: {exc.strerror}") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            directory = part.endswith("/")
            name = part.rstrip("/")
            if name in ("", ".", ".."):
                raise PathDenied(f"{requested!r}: invalid component {name!r}")
            if last and not directory:
                opened = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=fd)
            else:
                opened = os.open(name, dir_flags, dir_fd=fd)
            os.close(fd)
            fd = opened
        kind = os.fstat(fd).st_mode
        if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise PathDenied(f"{requested!r} is not a regular file or folder")
        if flags & os.O_NONBLOCK == 0 and stat.S_ISREG(kind):
            os.set_blocking(fd, True)
        return fd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.EMLINK) or (exc.errno == errno.ENOTDIR and _is_link(root, parts)):
            raise PathDenied(f"{requested!r}: symbolic links are not followed inside a granted folder") from None
        raise PathDenied(f"{requested!r}: {exc.strerror}") from None
    except BaseException:
        os.close(fd)
        raise


def _is_link(root: Path, parts: tuple[str, ...]) -> bool:
    path = root
    for part in parts:
        path = path / part.rstrip("/")
        if path.is_symlink():
            return True
    return False
