"""Kernel logic against the scripted fake backend (the real engine has its own `model` tests)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.config import Config
from aios.errors import ProcessNotFound, UnknownAgentError, UsageError
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.events import KernelEvent, OutputWritten, ProcessExited, TurnEnded
from memory.store import Store

pytestmark = pytest.mark.anyio


class Crasher(Agent):
    manifest = Manifest(name="crasher")

    async def run(self, ctx: Context, goal: str) -> str | None:
        raise RuntimeError("agent bug")


class Hungry(Agent):
    manifest = Manifest(name="hungry", capabilities=Capabilities(llm_token_budget=6))

    async def run(self, ctx: Context, goal: str) -> str | None:
        for _ in range(5):
            async for _piece in ctx.llm.chat([{"role": "user", "content": goal}]):
                pass
        return "never"


class Quitter(Agent):
    """Reads only the first token, then stops listening."""

    manifest = Manifest(name="quitter")

    async def run(self, ctx: Context, goal: str) -> str | None:
        async for piece in ctx.llm.chat([{"role": "user", "content": goal}]):
            return piece
        return None


class Extras:
    from aios.hookspecs import hookimpl

    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Crasher, Hungry, Quitter]


def _plugins() -> PluginManager:
    manager = PluginManager(load_entry_points=False)
    manager.register(Extras(), name="test-extras")
    return manager


def kernel_with(store: Store, backend: FakeBackend | None = None, config: Config | None = None) -> Any:
    return open_kernel(config or Config(), runtime=backend or FakeBackend(), store=store, plugins=_plugins())


async def collect(
    events: AsyncIterator[KernelEvent], pid: int, until: Callable[[KernelEvent], bool]
) -> list[KernelEvent]:
    seen = []
    async for event in events:
        if event.pid == pid:
            seen.append(event)
            if until(event):
                return seen
    return seen


async def test_one_shot_agent_streams_and_exits(store: Store) -> None:
    with anyio.fail_after(10):
        async with kernel_with(store) as kernel:
            events = kernel.subscribe()
            pid = await kernel.spawn("chat", "hello there", interactive=False)
            seen = await collect(events, pid, lambda e: isinstance(e, ProcessExited))
            text = "".join(e.text for e in seen if isinstance(e, OutputWritten))
            assert text == "echo: hello there"
            info = await kernel.wait(pid)
            assert info["state"] == "exited"
            assert info["exit_code"] == 0
            assert info["result"] == "echo: hello there"
            assert info["completion_tokens"] == 3
            assert info["prompt_tokens"] > 0
            assert info["llm_calls"] == 1
            assert info["ttft_s"] is not None
    assert [(m["role"], m["content"]) for m in store.messages(pid)] == [
        ("user", "hello there"),
        ("assistant", "echo: hello there"),
    ]
    row = store.get_process(pid)
    assert row["state"] == "exited"
    assert row["completion_tokens"] == 3
    assert [r["syscall"] for r in store.audit_rows()] == ["proc.spawn", "llm.chat"]


async def test_two_agents_run_at_once_and_both_answer(store: Store) -> None:
    gate = threading.Event()
    backend = FakeBackend(gate=gate)
    with anyio.fail_after(10):
        async with kernel_with(store, backend) as kernel:
            a = await kernel.spawn("chat", "first", interactive=False)
            b = await kernel.spawn("chat", "second", interactive=False)
            while {p["state"] for p in kernel.ps()} != {"waiting_llm"}:
                await anyio.sleep(0.01)
            assert [p["pid"] for p in kernel.ps()] == [a, b]
            gate.set()
            results = {(await kernel.wait(pid))["result"] for pid in (a, b)}
    assert results == {"echo: first", "echo: second"}


async def test_interactive_chat_remembers_earlier_turns(store: Store) -> None:
    seen: list[list[dict[str, str]]] = []
    backend = FakeBackend(
        script=lambda msgs: seen.append(list(msgs)) or f"turns={sum(m['role'] == 'user' for m in msgs)}"
    )
    with anyio.fail_after(10):
        async with kernel_with(store, backend) as kernel:
            events = kernel.subscribe()
            pid = await kernel.spawn("chat", interactive=True)
            for text in ("one", "two", "three"):
                await kernel.send(pid, text)
                await collect(events, pid, lambda e: isinstance(e, TurnEnded))
            while kernel.ps()[0]["state"] != "waiting_input":  # a confined agent asks over its socket
                await anyio.sleep(0.01)
            await kernel.close_input(pid)
            info = await kernel.wait(pid)
    assert info["result"] == "turns=3"
    assert {"role": "user", "content": "one"} in seen[-1]
    assert {"role": "assistant", "content": "turns=2"} in seen[-1]
    assert len(store.messages(pid)) == 6


async def test_kill_cancels_a_generating_agent(store: Store) -> None:
    backend = FakeBackend(script=lambda _: "word " * 1000, token_delay=0.005)
    with anyio.fail_after(10):
        async with kernel_with(store, backend) as kernel:
            events = kernel.subscribe()
            pid = await kernel.spawn("chat", "go", interactive=False)
            await collect(events, pid, lambda e: isinstance(e, OutputWritten))
            await kernel.kill(pid)
            info = await kernel.wait(pid)
    assert info["state"] == "exited"
    assert info["exit_code"] == 143
    assert info["error"] == "killed"
    # The partial reply is kept, not lost.
    assert store.messages(pid)[-1]["content"].startswith("word")


async def test_leaving_a_stream_early_cancels_generation(store: Store) -> None:
    backend = FakeBackend(script=lambda _: "a b c d e f g h", token_delay=0.01)
    with anyio.fail_after(10):
        async with kernel_with(store, backend) as kernel:
            pid = await kernel.spawn("quitter", "x")
            info = await kernel.wait(pid)
            assert info["result"] == "a"
            await anyio.sleep(0.1)  # give the engine time to notice the cancelled request
            decoded = len(backend.batches)
            await anyio.sleep(0.2)
            assert len(backend.batches) == decoded  # nothing more is generated for nobody
            assert decoded < 8


async def test_crashing_agent_fails_without_hurting_the_kernel(store: Store) -> None:
    with anyio.fail_after(10):
        async with kernel_with(store) as kernel:
            bad = await kernel.spawn("crasher")
            info = await kernel.wait(bad)
            assert info["state"] == "failed"
            assert info["exit_code"] == 1
            assert "RuntimeError: agent bug" in info["error"]
            good = await kernel.spawn("chat", "still alive?", interactive=False)
            assert (await kernel.wait(good))["result"] == "echo: still alive?"


async def test_token_budget_is_enforced_and_audited(store: Store) -> None:
    backend = FakeBackend(script=lambda _: "one two three four five six seven eight")
    with anyio.fail_after(10):
        async with kernel_with(store, backend) as kernel:
            pid = await kernel.spawn("hungry", "x")
            info = await kernel.wait(pid)
    assert info["state"] == "failed"
    assert "BudgetExceeded" in info["error"]
    assert info["prompt_tokens"] + info["completion_tokens"] >= 6
    denied = store.audit_rows(denied_only=True)
    assert len(denied) == 1
    assert denied[0]["syscall"] == "llm.chat"
    assert "budget" in denied[0]["reason"]


async def test_bad_requests_are_clear_errors(store: Store) -> None:
    with anyio.fail_after(10):
        async with kernel_with(store) as kernel:
            with pytest.raises(UnknownAgentError):
                await kernel.spawn("nope")
            with pytest.raises(UsageError, match="unknown priority"):
                await kernel.spawn("chat", "x", priority="urgent")
            with pytest.raises(ProcessNotFound):
                await kernel.send(999, "hi")
            pid = await kernel.spawn("chat", "x", interactive=False)
            await kernel.wait(pid)
            with pytest.raises(UsageError, match="already ended"):
                await kernel.send(pid, "late")
            assert len(kernel.ps()) == 1


async def test_shutdown_marks_running_agents_and_restart_reaps(tmp_path: Path) -> None:
    path = tmp_path / "aios.db"
    store = Store.open(path)
    with anyio.fail_after(10):
        async with kernel_with(store) as kernel:
            pid = await kernel.spawn("chat", interactive=True)
            while kernel.ps()[0]["state"] != "waiting_input":
                await anyio.sleep(0.01)
    assert store.get_process(pid)["error"] == "kernel shut down"
    # Simulate a crash: a row left "running" by a kernel that never cleaned up.
    store.save_process({"pid": 50, "agent": "chat", "state": "running", "boot_id": "crashed"})
    with anyio.fail_after(10):
        async with kernel_with(store) as kernel:
            assert store.get_process(50)["state"] == "failed"
            assert await kernel.spawn("chat", "x", interactive=False) == 51
    store.close()


async def test_suspend_resume_and_nice(store: Store) -> None:
    gate = threading.Event()
    with anyio.fail_after(10):
        async with kernel_with(store, FakeBackend(gate=gate)) as kernel:
            pid = await kernel.spawn("chat", "hello", interactive=False)
            await kernel.suspend(pid)
            assert kernel.info(pid)["state"] == "suspended"
            gate.set()
            await anyio.sleep(0.1)
            assert kernel.info(pid)["state"] == "suspended"  # its LLM work does not run while suspended
            assert kernel.info(pid)["completion_tokens"] == 0
            await kernel.nice(pid, "high")
            assert kernel.info(pid)["priority"] == "normal"  # the chat manifest caps it at normal
            await kernel.nice(pid, "background")
            assert kernel.info(pid)["priority"] == "background"
            with pytest.raises(UsageError, match="unknown priority"):
                await kernel.nice(pid, "urgent")
            await kernel.resume(pid)
            info = await kernel.wait(pid)
    assert info["result"] == "echo: hello"
    assert store.get_process(pid)["priority"] == "background"
