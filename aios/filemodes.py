"""Private by default: aios's directories 0700, its files 0600 (the discipline of OpenSSH's ``~/.ssh``).

The kernel and the CLI run under ``umask 077`` (:func:`private_umask`), so every database, WAL/SHM, swap,
log, lock, token and chroma file they create is readable by the user alone; the data and config dirs are
created 0700 (:func:`secure_home`). aios changes the mode of an existing directory only when it is its own:
the platformdirs defaults (``~/.local/share/aios``, ``~/.config/aios``). A folder the user named with
``AIOS_HOME`` is left as it is; :func:`loose_paths` (``aios doctor``'s ``modes`` check) reports what others
can reach, with the command that fixes it.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aios import paths

__all__ = [
    "PRIVATE_UMASK",
    "ModeReport",
    "ensure_private_dir",
    "loose_paths",
    "private_umask",
    "secure_home",
]

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
#: Group and other permission bits: any of them set on our files lets another user in.
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
#: Files in the config dir that hold secrets or decisions (config.toml and plugins/ are the user's own
#: text, not secret, and may be shared; the dir itself is 0700 either way).
SECRET_CONFIG_FILES = ("policy.json", "mcp.json", "models.json")
_USER_AUTHORED = ("config.toml", "plugins")


@contextmanager
def private_umask() -> Iterator[None]:
    """Create files 0600 and folders 0700 inside the block (process-wide: umask has no per-thread value)."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def _own_default_dirs() -> set[Path]:
    """Directories that are aios's by name: the platformdirs defaults, unless AIOS_HOME points elsewhere."""
    if paths.home_override() is not None:
        return set()
    return {paths.data_dir(), paths.config_dir()}


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) mode 0700; tighten it if it already exists and is aios's own."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode
    if mode & _OPEN_BITS and path in _own_default_dirs():
        os.chmod(path, 0o700)
        log.warning("tightened %s from %o to 700 (it holds private data)", path, stat.S_IMODE(mode))
    return path


def secure_home() -> None:
    """Make sure the data and config dirs exist and are private (run at kernel start and by the CLI)."""
    ensure_private_dir(paths.data_dir())
    ensure_private_dir(paths.config_dir())


class ModeReport:
    """Paths that group or others can reach, and the commands that fix them."""

    def __init__(self, loose: list[Path], fixes: list[str]) -> None:
        self.loose = loose
        self.fixes = fixes

    def __bool__(self) -> bool:
        return bool(self.loose)


def _walk(root: Path, skip_top: tuple[str, ...]) -> Iterator[Path]:
    """Every path under ``root`` (root included), not following symlinks."""
    yield root
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d not in skip_top]
            filenames = [f for f in filenames if f not in skip_top]
        for name in (*dirnames, *filenames):
            yield here / name


def _is_loose(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False  # gone meanwhile
    return not stat.S_ISLNK(st.st_mode) and bool(st.st_mode & _OPEN_BITS)


def loose_paths() -> ModeReport:
    """Everything in the data dir (and runtime dir), and the config dir's secret files, that is not private."""
    data, config, runtime = paths.data_dir(), paths.config_dir(), paths.runtime_dir()
    loose: list[Path] = []
    fixes: list[str] = []
    for root in dict.fromkeys((data, runtime)):  # the same dir under AIOS_HOME
        if not root.exists() or (root == runtime and runtime.is_relative_to(data)):
            continue
        found = [p for p in _walk(root, _USER_AUTHORED if root == config else ()) if _is_loose(p)]
        if found:
            loose += found
            fixes.append(f"chmod -R go-rwx {root}")
    if config != data and config.exists():
        found = [p for p in (config, *(config / name for name in SECRET_CONFIG_FILES)) if p.exists() and _is_loose(p)]
        if found:
            loose += found
            fixes.append("chmod go-rwx " + " ".join(str(p) for p in found))
    return ModeReport(loose, fixes)
