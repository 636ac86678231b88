"""The one confined resolver for every file access made on someone's behalf.

A path an agent sends is never trusted as a string, and the path that was checked is never opened again by
name. ``confine`` does the lexical half (``..`` cannot climb above the grant; NUL, length, ``~``); a
``Confined`` tree does the rest: it opens the granted root as a directory fd and resolves every path
*relative to that fd* with ``openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`` (Linux 5.6+), so the kernel
itself refuses any step that leaves the tree: ``..``, an absolute symlink, a relative one climbing out, a
``/proc`` magic link, a folder swapped for a symlink between a check and the use (there is no separate
check: the open *is* the check). The fd that was opened is the fd that is read, written or listed.

Policy for symbolic links (docs/access-control.md, "Symbolic links"):

- **Reads** follow a link only while it stays inside the tree (the grant, and the mount it is in).
- **Writes** create a temp file in the target's directory fd and ``renameat`` it over the name inside that
  same fd: a write never follows a link at the last component; a path whose last component is a link is
  refused ("write to the file it points to"). Deletes remove regular files only.
- **Indexing and watching** never follow links (``follow=False`` → ``RESOLVE_NO_SYMLINKS``): the index
  holds only regular files that lie inside their mount by path.
- Where ``openat2`` is missing (old kernels, seccomp filters) the fallback is a component-by-component
  ``openat`` walk with ``O_NOFOLLOW``: every link is refused, which is stricter, never wider.

Only regular files and folders are ever opened (no devices, FIFOs or sockets).
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aios.errors import PermissionDenied

__all__ = [
    "HAVE_OPENAT2",
    "Confined",
    "FileGrant",
    "PathDenied",
    "confine",
    "open_beneath",
    "open_confined",
]

_MAX_PATH = 4096

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_SYS_OPENAT2 = 437  # the same number on x86_64, aarch64 and every asm-generic architecture
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class PathDenied(PermissionDenied):
    """A path outside every grant, or one that cannot be opened safely."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _load_syscall() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    return fn


_syscall = _load_syscall()


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    """``openat2(2)``; raises OSError like ``os.open``."""
    assert _syscall is not None
    how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, resolve)
    encoded = os.fsencode(path)
    while True:
        fd = _syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dirfd),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err == errno.EINTR:
            continue
        raise OSError(err, os.strerror(err), path)


def _probe_openat2() -> bool:
    if _syscall is None or not hasattr(os, "O_DIRECTORY"):
        return False
    try:
        fd = _openat2(os.open("/", _DIR_FLAGS), ".", _DIR_FLAGS, 0, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return False
    os.close(fd)
    return True


#: Whether this kernel resolves paths beneath a directory fd itself (else the O_NOFOLLOW walk is used).
HAVE_OPENAT2 = _probe_openat2()


def _denied(exc: OSError, shown: str) -> PathDenied | OSError:
    """The PathDenied an escape-shaped OSError means; other errors (ENOENT, EACCES…) pass through."""
    if exc.errno == errno.EXDEV:
        return PathDenied(f"{shown!r} leads outside the folders this caller may use")
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return PathDenied(f"{shown!r}: a symbolic link on the way is not followed here")
    return exc


def open_beneath(
    dirfd: int,
    rel: str,
    flags: int = os.O_RDONLY,
    mode: int = 0o644,
    *,
    follow: bool = True,
    single_link: bool = False,
    shown: str = "",
) -> int:
    """Open ``rel`` relative to ``dirfd`` without ever leaving the tree below it; return the new fd.

    ``follow=False`` refuses every symbolic link on the way; ``single_link`` refuses a regular file with more
    than one hard link (it may be a file from outside the tree under a second name). Raises PathDenied for an
    escape or a link that is refused, OSError for the rest (a missing file is FileNotFoundError). Only
    regular files and folders are opened.
    """
    shown = shown or rel
    if rel.startswith("/") or "\x00" in rel:
        raise PathDenied(f"{shown!r}: not a relative path")
    rel = rel.strip("/") or "."
    flags |= os.O_CLOEXEC | os.O_NOCTTY
    probe = flags | os.O_NONBLOCK  # a FIFO must not block the open; checked and refused below
    try:
        if HAVE_OPENAT2:
            resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (0 if follow else RESOLVE_NO_SYMLINKS)
            for _ in range(16):  # EAGAIN: a rename raced the lookup; the kernel asks us to retry
                try:
                    fd = _openat2(dirfd, rel, probe, mode, resolve)
                    break
                except BlockingIOError:
                    continue
            else:
                raise PathDenied(f"{shown!r}: the folder keeps changing under the lookup; try again")
        else:
            fd = _walk_nofollow(dirfd, rel, probe, mode, shown)
    except OSError as exc:
        raise _denied(exc, shown) from None
    try:
        st = os.fstat(fd)
        kind = st.st_mode
        if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise PathDenied(f"{shown!r} is not a regular file or folder")
        if single_link and stat.S_ISREG(kind) and st.st_nlink > 1:
            raise PathDenied(f"{shown!r} has {st.st_nlink} hard links: it may be a file from outside, not opened")
        if not flags & os.O_NONBLOCK and stat.S_ISREG(kind):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _walk_nofollow(dirfd: int, rel: str, flags: int, mode: int, shown: str) -> int:
    """The fallback: one ``openat`` per component with ``O_NOFOLLOW`` (every link refused)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathDenied(f"{shown!r}: '..' is not allowed here")
    if not parts:
        return os.open(".", flags | os.O_DIRECTORY, dir_fd=dirfd)
    fd = os.dup(dirfd)
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            opened = os.open(name, (flags if last else _DIR_FLAGS) | os.O_NOFOLLOW, mode, dir_fd=fd)
            os.close(fd)
            fd = opened
        return fd
    except BaseException:
        os.close(fd)
        raise


@dataclass(frozen=True)
class Confined:
    """A directory tree that no access may leave.

    ``root`` is the tree; ``anchor`` is ``root`` or an ancestor of it that is opened by its path. The part
    from ``anchor`` down to ``root`` is resolved beneath the anchor with no symlinks at all, so a caller who
    may write inside ``anchor`` cannot swap a folder on that way for a link. Each operation opens the tree
    afresh (an fd per call, closed afterwards): nothing checked is ever reopened by name.
    """

    root: Path
    anchor: Path
    #: Refuse regular files with several hard links (for agents, and for the indexer).
    single_link: bool = False

    @classmethod
    def at(cls, root: str | Path, *, anchor: str | Path | None = None, single_link: bool = False) -> Confined:
        root, anchor = Path(root), Path(anchor) if anchor is not None else None
        if anchor is not None and anchor != root and not root.is_relative_to(anchor):
            raise PathDenied(f"{root} is not inside {anchor}")
        return cls(root, anchor or root, single_link)

    # -- paths -------------------------------------------------------------------------------

    def rel(self, path: str | Path) -> str:
        """``path`` (absolute, or relative to the root) as a path below the root, lexically; PathDenied if not."""
        text = str(path)
        if "\x00" in text:
            raise PathDenied(f"invalid path {text!r}")
        full = os.path.normpath(text if os.path.isabs(text) else os.path.join(self.root, text))
        root = str(self.root)
        if full == root:
            return ""
        if not full.startswith(root.rstrip("/") + "/"):
            raise PathDenied(f"{text!r} is outside {root}")
        return full[len(root) :].strip("/")

    @contextmanager
    def root_fd(self) -> Iterator[int]:
        try:
            fd = os.open(self.anchor, _DIR_FLAGS | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise PathDenied(f"{self.anchor} is a symbolic link, not the folder it was") from None
            raise
        try:
            if self.root != self.anchor:
                below = self.root.relative_to(self.anchor).as_posix()
                inner = open_beneath(fd, below, _DIR_FLAGS, follow=False, shown=str(self.root))
                os.close(fd)
                fd = inner
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def open(
        self, path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o644, *, follow: bool = True
    ) -> Iterator[int]:
        rel = self.rel(path)
        with self.root_fd() as root:
            fd = open_beneath(root, rel, flags, mode, follow=follow, single_link=self.single_link, shown=str(path))
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def parent(self, path: str | Path, *, create: bool = False, follow: bool = True) -> Iterator[tuple[int, str]]:
        """The fd of ``path``'s folder (made, with its missing parents, when ``create``) and its last name."""
        rel = self.rel(path)
        if not rel:
            raise PathDenied(f"{path!r} is the root of {self.root}, not a file in it")
        folder, _, name = rel.rpartition("/")
        with self.root_fd() as root:
            fd = self._folder(root, folder, create=create, follow=follow, shown=str(path))
        try:
            yield fd, name
        finally:
            os.close(fd)

    def _folder(self, root: int, folder: str, *, create: bool, follow: bool, shown: str) -> int:
        if not create:
            return open_beneath(root, folder, _DIR_FLAGS, follow=follow, shown=shown)
        fd = os.dup(root)
        try:
            for name in [p for p in folder.split("/") if p]:
                try:
                    inner = open_beneath(fd, name, _DIR_FLAGS, follow=follow, shown=shown)
                except FileNotFoundError:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile; opened (confined) below
                    inner = open_beneath(fd, name, _DIR_FLAGS, follow=False, shown=shown)
                os.close(fd)
                fd = inner
            return fd
        except BaseException:
            os.close(fd)
            raise

    # -- operations --------------------------------------------------------------------------

    def read(self, path: str | Path, limit: int = -1, *, follow: bool = True) -> bytes:
        with self.open(path, follow=follow) as fd:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
            return _read_fd(fd, limit)

    def read_with_stat(self, path: str | Path, limit: int, *, follow: bool = True) -> tuple[bytes, os.stat_result]:
        """The bytes (at most ``limit`` + 1, so callers can tell "too large") and the stat of the same fd."""
        with self.open(path, follow=follow) as fd:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
            return _read_fd(fd, limit + 1), st

    def lstat(self, path: str | Path, *, follow: bool = True) -> os.stat_result:
        """The entry itself (a link is not followed at the last component); parents resolved beneath."""
        with self.parent(path, follow=follow) as (fd, name):
            return os.stat(name, dir_fd=fd, follow_symlinks=False)

    def write(self, path: str | Path, data: bytes, *, mode: int | None = None) -> None:
        """Atomically replace (or create) a regular file: a temp file in the same folder fd, then ``renameat``."""
        with self.parent(path, create=True) as (fd, name):
            try:
                old = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                old = None
            if old is not None and stat.S_ISLNK(old.st_mode):
                raise PathDenied(f"{path!r} is a symbolic link: write to the file it points to")
            if old is not None and self.single_link and old.st_nlink > 1:
                raise PathDenied(f"{path!r} has {old.st_nlink} hard links: it may be a file from outside, not changed")
            if old is not None and not stat.S_ISREG(old.st_mode):
                what = "a folder" if stat.S_ISDIR(old.st_mode) else "not a regular file"
                raise IsADirectoryError(errno.EISDIR, what, str(path))
            tmp = f".aios-{secrets.token_hex(6)}.tmp"
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(out, view) :]
                    os.fchmod(out, stat.S_IMODE(old.st_mode) if old is not None else (mode or 0o644))
                    os.fsync(out)
                finally:
                    os.close(out)
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=fd)
                except OSError:
                    pass
                raise

    def unlink(self, path: str | Path) -> None:
        """Remove a regular file (never a folder, never through a link)."""
        with self.parent(path) as (fd, name):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise PathDenied(f"{path!r} is not a regular file")
            if self.single_link and st.st_nlink > 1:
                raise PathDenied(f"{path!r} has {st.st_nlink} hard links: it may be a file from outside, not removed")
            os.unlink(name, dir_fd=fd)

    def realpath(self, path: str | Path = "", *, follow: bool = True) -> Path:
        """Where ``path`` really is, read off the opened fd (inside the tree by construction)."""
        with self.open(path, _DIR_FLAGS if str(path).endswith("/") else os.O_RDONLY, follow=follow) as fd:
            return Path(os.readlink(f"/proc/self/fd/{fd}"))


def _read_fd(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left != 0:
        piece = os.read(fd, 1 << 20 if left < 0 else min(left, 1 << 20))
        if not piece:
            break
        chunks.append(piece)
        if left > 0:
            left -= len(piece)
    return b"".join(chunks)


# -- grants --------------------------------------------------------------------------------------


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
    grant like any other absolute path). This is the lexical half; a ``Confined`` open does the rest.
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
    # The deepest covering grant first: its tree is the tightest confinement for the open.
    for grant in sorted(candidates, key=lambda g: len(str(g.root)), reverse=True):
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
    """Open ``requested`` inside a grant (links followed only while they stay inside it); yield the fd."""
    write = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND))
    grant, parts = confine(grants, requested, write=write)
    tree = Confined.at(grant.root)
    rel = "/".join(p.rstrip("/") for p in parts)
    if parts and parts[-1].endswith("/"):
        flags |= os.O_DIRECTORY
    with ExitStack() as stack:
        try:
            fd = stack.enter_context(tree.open(rel, flags, mode))
        except OSError as exc:  # only the open's own errors: the caller's are its own
            raise PathDenied(f"{requested!r}: {exc.strerror}") from None
        yield fd
