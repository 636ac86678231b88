"""The kernel's memory service (``kernel.services["memory"]``): ``memory.service.MemoryService`` over the
kernel's store, following the kernel's events.

Started at boot (``kernel.syscall_table.SERVICES``, as ``memory``). At each agent's turn boundary
(``TurnEnded``/``ProcessExited``) the service applies its staged core-memory edits and indexes the turn;
edits left staged by a previous kernel are applied at start.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from kernel.events import KernelEvent, ProcessExited, TurnEnded
from memory.service import MemoryService, follow_turns

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from kernel.kernel import Kernel

__all__ = ["open_service"]

log = logging.getLogger(__name__)


async def _turn_ends(events: MemoryObjectReceiveStream[KernelEvent]) -> AsyncIterator[int]:
    with events:
        try:
            async for event in events:
                if isinstance(event, TurnEnded | ProcessExited):
                    yield event.pid
        except anyio.ClosedResourceError:
            return  # the service closed the stream: the kernel is stopping


@asynccontextmanager
async def open_service(kernel: Kernel) -> AsyncIterator[MemoryService]:
    service = MemoryService(kernel.store, flush=kernel.flush_writes)
    applied = service.memory.apply_pending(everything=True)
    if applied:
        log.info("applied %d core memory edit(s) staged before the last shutdown", applied)
    events = kernel.subscribe()
    # The follower runs in the kernel's task group: a task group of our own would be entered inside the
    # kernel's and exited after it (services close after the kernel's group), breaking cancel-scope nesting.
    tg = kernel.task_group
    if tg is None:
        events.close()
        raise RuntimeError("the memory service starts inside a running kernel")
    tg.start_soon(follow_turns, _turn_ends(events), service, name="aios-memory-turns")
    try:
        yield service
    finally:
        events.close()
        await anyio.to_thread.run_sync(service.close)
