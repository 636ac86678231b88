"""The kernel's memory service: task trees and agent memory over the kernel's store.

Started at boot (kernel.syscall_table.SERVICES, as ``memory``). It applies core-memory edits at each
agent's turn boundary (``TurnEnded``/``ProcessExited``; edits left staged by a previous kernel are applied
at start), and owns the vector index, which it opens on first use so kernels that never search memory
never load chroma or the embedding model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from memory.agent_memory import AgentMemory
from memory.tasktree import TaskTreeStore

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from kernel.events import KernelEvent
    from kernel.kernel import Kernel
    from memory.memory_vectors import ChromaVectors

__all__ = ["MemoryService", "memory_service", "open_service"]

log = logging.getLogger(__name__)


class MemoryService:
    def __init__(self, kernel: Kernel) -> None:
        #: Serialises everything on the kernel store's connection (shared with the store itself): task and
        #: memory syscalls run in worker threads, and their read-check-write steps must not interleave.
        self.lock: threading.RLock = getattr(kernel.store, "lock", None) or threading.RLock()
        self.kernel = kernel
        self.tasks = TaskTreeStore(kernel.store.db, lock=self.lock)
        self.memory = AgentMemory(kernel.store.db, lock=self.lock)
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

                    self.vectors = ChromaVectors(self.kernel.store.path)
                    self.vectors.start()
                    self.memory.vectors = self.vectors
                except Exception as exc:  # missing model files, chroma trouble: search still works on FTS5
                    self.vector_error = f"{type(exc).__name__}: {exc}"
                    log.warning("agent memory vectors unavailable, searching FTS5 only: %s", self.vector_error)
        return self.vectors

    def close(self) -> None:
        if self.vectors is not None:
            self.vectors.stop()


def memory_service(kernel: Kernel) -> MemoryService:
    """The running service (or one made on the spot when the service did not start)."""
    service = kernel.services.get("memory")
    if service is None:
        service = kernel.services["memory"] = MemoryService(kernel)
    return service


def _turn_upkeep(service: MemoryService, pid: int) -> None:
    """Apply ``pid``'s staged core edits and index the turn's messages (blocking: SQLite)."""
    flush = getattr(service.kernel, "flush_writes", None)
    if flush is not None:
        flush()  # the kernel writes messages behind: the turn's must be in the table first
    with service.lock:
        service.memory.apply_pending(pid=pid)
        service.memory.sync_recall()  # the turn's messages into FTS5 now, vectors via the outbox
    if service.vectors is not None:
        service.vectors.wake()


async def _follow_turns(events: MemoryObjectReceiveStream[KernelEvent], service: MemoryService) -> None:
    from kernel.events import ProcessExited, TurnEnded

    one_at_a_time = anyio.CapacityLimiter(1)  # off the event loop, in turn order
    with events:
        async for event in events:
            if isinstance(event, TurnEnded | ProcessExited):
                try:
                    await anyio.to_thread.run_sync(_turn_upkeep, service, event.pid, limiter=one_at_a_time)
                except Exception:
                    log.exception("memory upkeep at the turn boundary of pid %d failed", event.pid)


@asynccontextmanager
async def open_service(kernel: Kernel) -> AsyncIterator[MemoryService]:
    service = MemoryService(kernel)
    applied = service.memory.apply_pending(everything=True)
    if applied:
        log.info("applied %d core memory edit(s) staged before the last shutdown", applied)
    events = kernel.subscribe()
    # The follower runs in the kernel's task group: a task group of our own would be entered inside the
    # kernel's and exited after it (services close after the kernel's group), breaking cancel-scope nesting.
    tg = kernel.task_group
    if tg is None:
        raise RuntimeError("the memory service starts inside a running kernel")
    tg.start_soon(_follow_turns, events, service, name="aios-memory-turns")
    try:
        yield service
    finally:
        events.close()
        await anyio.to_thread.run_sync(service.close)
