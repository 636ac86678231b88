"""The memory service as a library, with no kernel: a real store, a flush callable and a stream of pids whose
turns ended; and as the kernel runs it (``kernel.svc_memory``), following the kernel's events."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from aios.config import Config
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.events import TurnEnded
from kernel.svc_memory import open_service
from memory.service import MemoryService, follow_turns, memory_service
from memory.store import Store

pytestmark = pytest.mark.anyio

NS = "agent:chat"


async def _until(check: Callable[[], bool]) -> None:
    """Poll ``check`` until it holds (the upkeep runs in a worker thread), failing after 10 s."""
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


async def test_turn_ends_apply_that_pids_staged_edits_only(store: Store) -> None:
    flushed: list[int] = []
    service = MemoryService(store, flush=lambda: flushed.append(1))
    service.memory.stage_core(NS, "persona", "Terse.", actor="agent:chat#3", pid=3)
    service.memory.stage_core(NS, "human", "Ada", actor="agent:chat#4", pid=4)
    send, receive = anyio.create_memory_object_stream[int](10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_turns, receive, service)
        await send.send(3)
        await _until(lambda: bool(service.memory.core(NS)))
        send.close()
    assert [r["label"] for r in service.memory.core(NS)] == ["persona"]
    assert [r["label"] for r in service.memory.pending(NS)] == ["human"]  # pid 4's turn has not ended
    assert flushed == [1]  # the write-behind messages were flushed before the turn was indexed


async def test_a_failing_upkeep_is_logged_and_the_next_turn_still_runs(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk full")

    service = MemoryService(store, flush=flush)
    service.memory.stage_core(NS, "persona", "Terse.", actor="agent:chat#5", pid=5)
    send, receive = anyio.create_memory_object_stream[int](10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_turns, receive, service)
        await send.send(5)  # fails in flush: nothing applied
        await send.send(5)  # the next boundary applies it
        await _until(lambda: bool(service.memory.core(NS)))
        send.close()
    assert "memory upkeep at the turn boundary of pid 5 failed" in caplog.text


async def test_memory_service_is_made_on_the_spot_for_a_host_without_one(store: Store) -> None:
    class Host:
        def __init__(self) -> None:
            self.store = store
            self.services: dict[str, object] = {}
            self.flushes = 0

        def flush_writes(self) -> None:
            self.flushes += 1

    host = Host()
    service = memory_service(host)
    assert memory_service(host) is service and host.services["memory"] is service
    service.turn_upkeep(1)
    assert host.flushes == 1


async def test_the_kernels_memory_service_follows_its_turns(store: Store) -> None:
    async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=PluginManager()) as kernel:
        service = kernel.services["memory"]
        assert isinstance(service, MemoryService)
        service.memory.stage_core(NS, "persona", "Terse.", actor="agent:chat#9", pid=9)
        kernel.events.publish(TurnEnded(9))
        await _until(lambda: bool(service.memory.core(NS)))


async def test_the_kernels_memory_service_needs_a_running_kernel(store: Store) -> None:
    class Stopped:
        def __init__(self) -> None:
            self.store = store
            self.task_group = None

        def flush_writes(self) -> None:
            pass

        def subscribe(self) -> anyio.abc.ObjectReceiveStream[object]:
            return anyio.create_memory_object_stream[object](1)[1]

    with pytest.raises(RuntimeError, match="inside a running kernel"):
        async with open_service(Stopped()):  # type: ignore[arg-type]
            pass
