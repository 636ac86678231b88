"""Worker pools for blocking work (kernel/blocking.py): bounded, one set per event loop, and control calls
through the real socket still answer while a pool is saturated with slow, GIL-holding work."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _access_kit import Rig, open_rig

from kernel.blocking import POOL_SIZES, pool_stats, run_blocking

pytestmark = pytest.mark.anyio


class Gate:
    """Blocking calls that hold their worker until opened, counting how many run at once."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def wait(self, value: int = 0) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.open.wait(20)
            return value
        finally:
            with self.lock:
                self.running -= 1

    def spin(self) -> int:
        """Python that holds the GIL between switch intervals until opened (as a search's row building does)."""
        n = 0
        while not self.open.is_set():
            n += sum(range(2000))
        return n


async def until(check: Callable[[], bool]) -> None:
    while not check():
        await anyio.sleep(0.01)


async def test_a_pool_runs_at_most_its_size_at_once_and_queues_the_rest() -> None:
    size = POOL_SIZES["search"]
    gate = Gate()
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await run_blocking(gate.wait, i, pool="search"))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for i in range(size + 3):
                tg.start_soon(one, i)
            await until(lambda: pool_stats()["search"]["waiting"] == 3)
            assert pool_stats()["search"] == {"size": size, "busy": size, "waiting": 3}
            assert pool_stats()["db"]["busy"] == 0  # pools are independent
            assert await run_blocking(lambda: "db answers", pool="db") == "db answers"
            gate.open.set()
    assert gate.most == size
    assert sorted(results) == list(range(size + 3))
    assert pool_stats()["search"] == {"size": size, "busy": 0, "waiting": 0}


async def test_a_queued_call_can_be_cancelled_and_the_pool_stays_usable() -> None:
    gate = Gate()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(POOL_SIZES["index"]):
                tg.start_soon(lambda: run_blocking(gate.wait, pool="index"))
            await until(lambda: pool_stats()["index"]["busy"] == POOL_SIZES["index"])
            with anyio.move_on_after(0.05) as scope:
                await run_blocking(gate.wait, pool="index")  # queued behind the busy ones
            assert scope.cancelled_caught
            assert pool_stats()["index"]["waiting"] == 0
            gate.open.set()
        assert await run_blocking(lambda: 7, pool="index") == 7


async def test_unknown_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown worker pool 'serch'"):
        await run_blocking(lambda: None, pool="serch")


async def test_each_event_loop_has_its_own_pools() -> None:
    """A loop in another thread saturates its search pool; this loop's search pool is untouched and
    answers (one limiter shared across loops made this loop queue behind the other's calls, or fail)."""
    size = POOL_SIZES["search"]
    gate = Gate()
    saturated = threading.Event()

    async def other_loop() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(size + 2):
                tg.start_soon(lambda: run_blocking(gate.wait, pool="search"))
            await until(lambda: pool_stats()["search"]["waiting"] == 2)
            saturated.set()

    thread = threading.Thread(target=anyio.run, args=(other_loop,))
    thread.start()
    try:
        with anyio.fail_after(20):
            await anyio.to_thread.run_sync(saturated.wait)
            assert pool_stats()["search"] == {"size": size, "busy": 0, "waiting": 0}
            assert await run_blocking(lambda: "here", pool="search") == "here"
            assert gate.running == size  # the other loop's calls are still held
    finally:
        gate.open.set()
        thread.join(20)
    assert not thread.is_alive()


def _get(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def _client(rig: Rig, token: str) -> httpx.Client:
    assert rig.socket is not None
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(rig.socket)),
        base_url="http://aios",
        headers={"authorization": f"Bearer {token}"},
        timeout=20,
    )


async def test_control_calls_answer_while_the_search_pool_is_saturated(tmp_path: Path) -> None:
    """The kernel's search pool is full of CPU-bound Python that only ends when the test says so, with more
    queued behind it: ps, spawn, a process's db-pool syscall and the audit log still answer over the real
    socket, while every one of those calls is still pending."""
    size = POOL_SIZES["search"]
    gate = Gate()
    with anyio.fail_after(60):
        async with open_rig(tmp_path, "socket") as rig:
            assert rig.portal is not None and rig.frontend_token is not None
            portal = rig.portal
            held: list[Future[int]] = [
                portal.start_task_soon(lambda: run_blocking(gate.spin, pool="search")) for _ in range(size + 4)
            ]

            def search_pool() -> dict[str, int]:
                return portal.call(pool_stats)["search"]

            await until(lambda: search_pool()["waiting"] == 4)
            with _client(rig, rig.frontend_token) as front:
                assert _get(front, "/v1/ps") == []
                spawned = _post(front, "/v1/spawn", {"agent": "alpha", "token": True})
                with _client(rig, spawned["token"]) as agent:
                    tree = _post(agent, "/v1/call", {"syscall": "task.create", "payload": {"title": "under load"}})
                    listed = _post(agent, "/v1/call", {"syscall": "task.list", "payload": {}})
                assert [t["id"] for t in listed] == [tree["id"]]
                assert [p["pid"] for p in _get(front, "/v1/ps")] == [spawned["pid"]]
                assert any(r["syscall"] == "task.create" for r in _get(front, "/v1/audit"))
                # Everything above answered while the search pool was still full and queued.
                assert search_pool() == {"size": size, "busy": size, "waiting": 4}
                assert not any(f.done() for f in held)
                gate.open.set()
                spun = [await anyio.to_thread.run_sync(future.result, 20) for future in held]
                assert sum(1 for n in spun if n > 0) >= size  # those that held the pool had been spinning
                assert search_pool() == {"size": size, "busy": 0, "waiting": 0}
                _post(front, "/v1/close_input", {"pid": spawned["pid"]})
