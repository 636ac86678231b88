"""The memory service: task trees and agent memory over one store, upkeep at turn boundaries.

A library: the kernel runs it as its ``memory`` service (``kernel.svc_memory``), handing it the store, a
way to flush the messages it writes behind, the pids whose turns end and a task group to follow them in.
It applies core-memory edits at each agent's turn boundary (edits left staged by a previous kernel are
applied at start), and owns the vector index, which it opens on first use so kernels that never search
memory never load chroma or the embedding model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from memory.agent_memory import AgentMemory
from memory.tasktree import TaskTreeStore

if TYPE_CHECKING:
    from memory.memory_vectors import ChromaVectors
    from memory.store import Store

__all__ = ["MemoryHost", "MemoryService", "follow_turns", "memory_service"]

log = logging.getLogger(__name__)


class MemoryService:
    def __init__(self, store: Store, *, flush: Callable[[], None] | None = None) -> None:
        #: Serialises everything on the store's connection (shared with the store itself): task and memory
        #: syscalls run in worker threads, and their read-check-write steps must not interleave.
        self.lock: threading.RLock = getattr(store, "lock", None) or threading.RLock()
        self.store = store
        #: Writes the messages the kernel writes behind, so a turn's are in the table before it is indexed.
        self.flush = flush
        self.tasks = TaskTreeStore(store.db, lock=self.lock)
        self.memory = AgentMemory(store.db, lock=self.lock)
        self.vectors: ChromaVectors | None = None
        self.vector_error: str | None = None
        self._vector_lock = threading.Lock()

    def ensure_vectors(self) -> ChromaVectors | None:
        """Open the vector index (and start its worker) on first use; ``None`` (FTS only) if it cannot."""
        if self.vectors is not None or self.vector_error is not None:
            return self.vectors
        with self._vector_lock:
            if self.vectors is None and self.vector_error is None:
                try:
                    from memory.memory_vectors import ChromaVectors

                    self.vectors = ChromaVectors(self.store.path)
                    self.vectors.start()
                    self.memory.vectors = self.vectors
                except Exception as exc:  # missing model files, chroma trouble: search still works on FTS5
                    self.vector_error = f"{type(exc).__name__}: {exc}"
                    log.warning("agent memory vectors unavailable, searching FTS5 only: %s", self.vector_error)
        return self.vectors

    def turn_upkeep(self, pid: int) -> None:
        """Apply ``pid``'s staged core edits and index the turn's messages (blocking: SQLite)."""
        if self.flush is not None:
            self.flush()  # messages are written behind: the turn's must be in the table first
        with self.lock:
            self.memory.apply_pending(pid=pid)
            self.memory.sync_recall()  # the turn's messages into FTS5 now, vectors via the outbox
        if self.vectors is not None:
            self.vectors.wake()

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.stop()


class MemoryHost(Protocol):
    """What ``memory_service`` needs of its host (the kernel): its store, services and write-behind flush."""

    store: Store
    services: dict[str, Any]

    def flush_writes(self) -> None: ...


def memory_service(host: MemoryHost) -> MemoryService:
    """The running service (or one made on the spot when the service did not start)."""
    service = host.services.get("memory")
    if service is None:
        service = host.services["memory"] = MemoryService(host.store, flush=host.flush_writes)
    return service


async def follow_turns(pids: AsyncIterable[int], service: MemoryService) -> None:
    """Run ``service.turn_upkeep`` for each pid whose turn ended, off the event loop and in turn order."""
    one_at_a_time = anyio.CapacityLimiter(1)
    async for pid in pids:
        try:
            await anyio.to_thread.run_sync(service.turn_upkeep, pid, limiter=one_at_a_time)
        except Exception:
            log.exception("memory upkeep at the turn boundary of pid %d failed", pid)
