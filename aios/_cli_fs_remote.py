"""How `aios fs` reaches the semantic file system: every command is ``fs.*`` syscalls by the person at the
terminal through the one door (``kernel.connect``): the running kernel over its socket, else a kernel started
in this process for the command. Either way they go through ``Kernel.dispatch``: checked against
``[access.user]``, audited as agent "user", confined.

- **Reads** (search, ls, cat, history, diff, mounts, views, check) are one call (``read``); with a kernel
  running that is one socket call that imports neither the kernel nor the index (chromadb, onnxruntime), so
  ``aios fs search`` answers in the time of one round trip.
- **Changes** (mount, unmount, index, write, rollback, group, join, summarize, compare, ask, check --rebuild)
  run in ``change``, which with an in-process kernel also waits for its embedder (the kernel stops with the
  command).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from aios._cli_util import status

__all__ = ["absolute", "change", "read", "settle"]

T = TypeVar("T")

_NO_SEMFS = "the semantic file system is not running in this kernel"


def absolute(path: str) -> str:
    """The kernel's working directory is not ours: send paths as the user meant them, absolute."""
    return path if path.startswith("@") else os.path.abspath(os.path.expanduser(path))


def read(syscall: str, **payload: Any) -> Any:
    """``syscall`` as the user, in the running kernel or one started for the command."""
    from kernel.connect import call_as_user

    return call_as_user(syscall, loading=status, before_start=_index_free, **payload)


def _index_free() -> None:
    from kernel.launch import index_free

    index_free()


class Door:
    """What a change holds while it runs: ``call`` one syscall as the user (with a spinner), and where."""

    def __init__(self, user: Any) -> None:
        self.user = user
        #: True when the kernel runs in this process and stops with the command.
        self.in_process = user.where != "daemon"

    async def call(self, syscall: str, label: str | None = None, **payload: Any) -> Any:
        if label is None:
            return await self.user.call(syscall, **payload)
        where = "" if self.in_process else " (in the running kernel)"
        with status(f"{label}{where}…"):
            return await self.user.call(syscall, **payload)


def change(work: Callable[[Door], Awaitable[T]]) -> T:
    """Run ``await work(door)`` through the one door (the running kernel, else one started here)."""
    from aios.client import daemon_client
    from aios.errors import UsageError
    from kernel.connect import run_as_user
    from kernel.launch import index_free

    if (client := daemon_client()) is not None:
        client.close()
    else:
        index_free()  # fail in a moment, before the model loads, if another process writes the index

    async def main(user: Any) -> T:
        try:
            return await work(Door(user))
        except UsageError as exc:
            if user.where != "daemon" and exc.message.startswith(_NO_SEMFS):
                index_free()  # the service lost the writer lock to another process since: say so
            raise

    return run_as_user(main, loading=status)


async def pending(door: Door) -> int:
    """Vectors the kernel still has to embed (its background embedder fills them from the outbox); 0 when the
    user may not list mounts (``[access.user]``): the change is done, only the count is unknown."""
    from aios.errors import PermissionDenied

    try:
        return int((await door.call("fs.mounts"))["status"]["vectors_pending"])
    except PermissionDenied:
        return 0


async def settle(door: Door, stats: dict[str, Any] | None = None, *, embed: bool = True) -> int:
    """After a change: with a kernel in this process, wait (progress bar on stderr) until its embedder has
    drained the outbox, since the kernel stops with the command; a running daemon keeps embedding in the
    background, so nothing is waited for. Returns the vectors still pending; records the embedding rate in
    ``stats`` when it waited."""
    import anyio

    left = await pending(door)
    if not (door.in_process and embed and left):
        return left
    started, first, last_progress, seen = time.monotonic(), left, time.monotonic(), left
    with _progress("embedding") as bar:
        task = bar.add_task("vectors", total=first, item="Ctrl-C stops; keyword search works already")
        while left:
            await anyio.sleep(0.25 if time.monotonic() - started < 2 else 0.5)
            left = await pending(door)
            bar.update(task, completed=max(0, first - left), total=max(first, first - left))
            if left < seen:
                seen, last_progress = left, time.monotonic()
            elif time.monotonic() - last_progress > 120:  # the embedder is stuck: the outbox keeps the rest
                break
    if stats is not None:
        done, elapsed = max(0, first - left), max(time.monotonic() - started, 1e-9)
        stats.update(vectors=done, vectors_seconds=round(elapsed, 2), vectors_per_s=round(done / elapsed, 1))
    return left


def _progress(label: str) -> AbstractContextManager[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[item]}", style="dim"),
        console=Console(stderr=True),
        transient=True,
    )
