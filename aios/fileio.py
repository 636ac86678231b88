"""Small file helpers shared by the model registry, the stores and `aios doctor` (public: memory uses them)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "ensure_writable_dir"]


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_writable_dir(path: Path) -> None:
    """Create ``path`` if needed (mode 0700: aios's dirs are private) and prove it is writable; raise OSError
    with the path otherwise."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    probe = path / f".aios-write-probe-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
