"""``mem.*`` syscalls: agent memory (memory/agent_memory.py), checked as Access("memory", namespace).

``namespace`` defaults to the caller's own, ``agent:<name>``, which it may always read and write; any other
needs ``memory_read``/``memory_write`` in its capabilities.

Each call is SQLite on the kernel store's connection, run in a worker pool off the event loop: ``db`` under
the memory service's lock for the whole call, ``search`` (FTS5 + query embedding + vectors) for mem.search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field

from kernel.access import own_namespace
from kernel.blocking import run_blocking
from kernel.syscalls import Access, Request, syscall
from memory.agent_memory import AgentMemory
from memory.service import memory_service

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

T = TypeVar("T")

#: Provenance kinds (memory.agent_memory.SOURCES).
Source = Literal["user", "file", "tool", "agent"]
_NS = Field(None, min_length=1, max_length=200)


class _MemRequest(Request):
    namespace: str | None = _NS


def _ns(proc: Process, request: _MemRequest) -> str:
    return request.namespace or own_namespace(proc.agent)


def _read(k: Kernel, p: Process, r: _MemRequest) -> list[Access]:
    return [Access("memory", _ns(p, r))]


def _write(k: Kernel, p: Process, r: _MemRequest) -> list[Access]:
    return [Access("memory", _ns(p, r), write=True)]


async def _run(kernel: Kernel, body: Callable[[AgentMemory], T]) -> T:
    """``body(memory)`` in the ``db`` pool, holding the store lock throughout."""

    def locked() -> T:
        kernel.flush_writes()  # recall reads the message log, which the kernel writes behind
        service = memory_service(kernel)
        with service.lock:
            return body(service.memory)

    return await run_blocking(locked, pool="db")


def _actor(proc: Process) -> str:
    return f"agent:{proc.agent}#{proc.pid}"


class CoreGetRequest(_MemRequest):
    pass


class CoreSetRequest(_MemRequest):
    label: str = Field(min_length=1, max_length=40)
    value: str = Field(max_length=8000)
    limit: int | None = Field(None, ge=1, le=8000)
    source: Source = "agent"
    source_ref: str = Field("", max_length=500)


class CoreDeleteRequest(_MemRequest):
    label: str = Field(min_length=1, max_length=40)


class ArchiveRequest(_MemRequest):
    text: str = Field(min_length=1, max_length=50_000)
    tags: list[str] = Field(default_factory=list, max_length=20)
    source: Source = "agent"
    source_ref: str = Field("", max_length=500)


def _both_kinds() -> list[Literal["recall", "archival"]]:
    return ["recall", "archival"]


class SearchRequest(_MemRequest):
    query: str = Field(min_length=1, max_length=2000)
    kinds: list[Literal["recall", "archival"]] = Field(default_factory=_both_kinds, min_length=1)
    tags: list[str] = Field(default_factory=list, max_length=20)
    since: float | None = None
    until: float | None = None
    limit: int = Field(10, ge=1, le=100)


class ListRequest(_MemRequest):
    kind: Literal["all", "core", "recall", "archival"] = "all"
    limit: int = Field(50, ge=1, le=1000)


class NamespacesRequest(Request):
    pass


class ItemRequest(_MemRequest):
    item: str = Field(min_length=2, max_length=30)


@syscall("mem.core_get", CoreGetRequest, access=_read)
async def mem_core_get(kernel: Kernel, proc: Process, request: CoreGetRequest) -> dict[str, Any]:
    """Core blocks of a namespace (as applied), the edits staged for the next turn, and the rendered text."""
    ns = _ns(proc, request)
    return await _run(
        kernel,
        lambda memory: {
            "namespace": ns,
            "blocks": memory.core(ns),
            "pending": memory.pending(ns),
            "rendered": memory.render_core(ns),
        },
    )


@syscall("mem.core_set", CoreSetRequest, access=_write)
async def mem_core_set(kernel: Kernel, proc: Process, request: CoreSetRequest) -> dict[str, Any]:
    """Stage a core-block edit; it is applied when the caller's turn ends."""
    return await _run(
        kernel,
        lambda memory: memory.stage_core(
            _ns(proc, request),
            request.label,
            request.value,
            limit=request.limit,
            source=request.source,
            source_ref=request.source_ref,
            actor=_actor(proc),
            pid=proc.pid,
        ),
    )


@syscall("mem.core_delete", CoreDeleteRequest, access=_write)
async def mem_core_delete(kernel: Kernel, proc: Process, request: CoreDeleteRequest) -> dict[str, Any]:
    """Stage the removal of a core block (applied when the caller's turn ends)."""
    return await _run(
        kernel,
        lambda memory: memory.stage_core(_ns(proc, request), request.label, None, actor=_actor(proc), pid=proc.pid),
    )


@syscall("mem.archive", ArchiveRequest, access=_write)
async def mem_archive(kernel: Kernel, proc: Process, request: ArchiveRequest) -> dict[str, Any]:
    """Store an archival item with tags and its provenance; its vector is written in the background."""
    item = await _run(
        kernel,
        lambda memory: memory.archive(
            _ns(proc, request),
            request.text,
            tags=request.tags,
            source=request.source,
            source_ref=request.source_ref,
            actor=_actor(proc),
        ),
    )
    vectors = await run_blocking(lambda: memory_service(kernel).ensure_vectors(), pool="search")  # opens chroma once
    if vectors is not None:
        vectors.wake()
    return item


@syscall("mem.search", SearchRequest, access=_read)
async def mem_search(kernel: Kernel, proc: Process, request: SearchRequest) -> list[dict[str, Any]]:
    """Hybrid (BM25 + vector) search over recall and archival memory, with tag and time filters."""

    def search() -> list[dict[str, Any]]:
        kernel.flush_writes()  # recall reads the message log, which the kernel writes behind
        service = memory_service(kernel)
        service.ensure_vectors()
        # Reads, and sync_recall takes the lock itself: searches need not wait for each other's embedding.
        return service.memory.search(
            _ns(proc, request),
            request.query,
            kinds=tuple(request.kinds),
            tags=request.tags,
            since=request.since,
            until=request.until,
            limit=request.limit,
        )

    return await run_blocking(search, pool="search")


@syscall("mem.list", ListRequest, access=_read)
async def mem_list(kernel: Kernel, proc: Process, request: ListRequest) -> dict[str, Any]:
    """A namespace's items: core blocks (and staged edits), recent recall messages, archival items."""
    return await _run(
        kernel, lambda memory: memory.list_items(_ns(proc, request), kind=request.kind, limit=request.limit)
    )


_NAMESPACE_COUNTS = (
    ("core", "SELECT namespace, COUNT(*) FROM mem_core GROUP BY namespace"),
    ("archival", "SELECT namespace, COUNT(*) FROM mem_archival GROUP BY namespace"),
    (
        "recall",
        "SELECT 'agent:' || p.agent, COUNT(*) FROM messages m JOIN processes p ON p.pid = m.pid GROUP BY p.agent",
    ),
)


@syscall("mem.namespaces", NamespacesRequest, access=lambda k, p, r: [Access("memory", own_namespace(p.agent))])
async def mem_namespaces(kernel: Kernel, proc: Process, request: NamespacesRequest) -> list[dict[str, Any]]:
    """The memory namespaces the caller may read, with how many core, recall and archival items each holds."""

    def counts(memory: AgentMemory) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for kind, sql in _NAMESPACE_COUNTS:
            for namespace, count in memory.db.execute(sql).fetchall():
                found.setdefault(str(namespace), {"core": 0, "recall": 0, "archival": 0})[kind] = int(count)
        return found

    found = await _run(kernel, counts)
    readable = [
        {"namespace": ns, **found[ns]}
        for ns in sorted(found)
        if kernel.guard.decide(proc, proc.caps, Access("memory", ns))[0] == "allow"
    ]
    return readable


@syscall("mem.get", ItemRequest, access=_read)
async def mem_get(kernel: Kernel, proc: Process, request: ItemRequest) -> dict[str, Any]:
    """One item (``r<id>`` recall message or ``a<id>`` archival item) with its provenance."""
    return await _run(kernel, lambda memory: memory.item(_ns(proc, request), request.item))


@syscall("mem.forget", ItemRequest, access=_write)
async def mem_forget(kernel: Kernel, proc: Process, request: ItemRequest) -> dict[str, Any]:
    """Forget an item for good: the row, its full-text entry and (through the outbox) its vector."""
    item = await _run(kernel, lambda memory: memory.forget(_ns(proc, request), request.item))
    vectors = memory_service(kernel).vectors
    if vectors is not None:
        vectors.wake()
    return item
