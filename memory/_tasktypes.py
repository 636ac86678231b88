"""Types, errors and checks of the task tree (memory/tasktree.py re-exports the public ones)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from aios.errors import UsageError

Status = Literal["pending", "running", "blocked", "done", "failed", "superseded"]
STATUSES: tuple[str, ...] = ("pending", "running", "blocked", "done", "failed", "superseded")

#: Allowed status changes through ``update``; ``superseded`` is reached only by replace/supersede.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "blocked", "done", "failed"}),
    "running": frozenset({"pending", "blocked", "done", "failed"}),
    "blocked": frozenset({"pending", "running", "failed", "done"}),
    "done": frozenset({"pending", "running"}),
    "failed": frozenset({"pending", "running"}),
    "superseded": frozenset(),
}

NODE_FIELDS = ("title", "status", "input", "output")


class TaskError(UsageError):
    """A task-tree operation was asked for something impossible; nothing was changed."""


class TreeNotFound(TaskError):
    pass


class NodeNotFound(TaskError):
    pass


class CycleError(TaskError):
    pass


class VersionError(TaskError):
    pass


def check_title(title: str) -> str:
    title = title.strip()
    if not title:
        raise TaskError("a task node needs a non-empty title")
    if len(title) > 200:
        raise TaskError(f"a task node title is at most 200 characters (got {len(title)})")
    return title


def check_status(status: str, *, allow_superseded: bool) -> None:
    if status not in STATUSES or (status == "superseded" and not allow_superseded):
        allowed = [s for s in STATUSES if allow_superseded or s != "superseded"]
        raise TaskError(f"unknown task status {status!r} (use one of: {', '.join(allowed)})")


def find_cycle(edges: dict[int, list[int]]) -> int | None:
    """A node on a dependency cycle of ``edges`` (node -> the nodes it depends on), or None."""
    state: dict[int, int] = {}
    for start in edges:
        if state.get(start):
            continue
        stack: list[tuple[int, Iterator[int]]] = [(start, iter(edges.get(start, [])))]
        state[start] = 1
        while stack:
            nid, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[nid] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return nxt
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(edges.get(nxt, []))))
    return None
