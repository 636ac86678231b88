"""`aios fs` while a kernel runs (the TUI, `aios serve`): that kernel owns the file index, so the commands
that change it send their operation over the socket (``POST /v1/fs``, the front-end token) and the kernel
runs it as the matching ``fs.*`` syscall for the user, audited. Reads stay local (read-only handles)."""

from __future__ import annotations

import os
from typing import Any

from aios._cli_util import status

__all__ = ["absolute", "daemon", "pending", "remote"]


def daemon() -> Any:
    """The running kernel's client, or None (then the command works on the stores directly)."""
    from aios.client import daemon_client

    return daemon_client()


def absolute(path: str) -> str:
    """The kernel's working directory is not ours: send paths as the user meant them, absolute."""
    return path if path.startswith("@") else os.path.abspath(os.path.expanduser(path))


def remote(client: Any, syscall: str, label: str, **payload: Any) -> Any:
    """Run ``syscall`` in the kernel with a spinner (the kernel reports no per-file progress)."""
    with status(f"{label} (in the running kernel)…"):
        return client.fs(syscall, **payload)


def pending(client: Any) -> int:
    """Vectors the kernel still has to embed (it does so in the background)."""
    rows = client.fs("fs.mounts")["mounts"]
    return sum(int(r.get("vectors_pending") or 0) for r in rows)
