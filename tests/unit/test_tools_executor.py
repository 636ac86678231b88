"""The DAG executor over an in-process MCP server (the SDK's memory transport): parallel start, failure
values, retries, timeouts, broken plans that never hang, and run metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

from tools.builtin import quiet_mcpserver
from tools.executor import Executor, PlanRun
from tools.host import McpHost
from tools.plan import load_plan

pytestmark = pytest.mark.anyio

RO = ToolAnnotations(read_only_hint=True)


def make_server(state: dict[str, Any]) -> Any:
    server = quiet_mcpserver("mem")
    state.setdefault("calls", {})
    state.setdefault("running", 0)
    state.setdefault("peak", 0)

    @server.tool(annotations=RO)
    async def wait(name: str, gate: str = "") -> str:
        """Wait on a named gate (set by the test) or return at once."""
        state["calls"][name] = state["calls"].get(name, 0) + 1
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        try:
            if gate:
                await state[gate].wait()
        finally:
            state["running"] -= 1
        return name

    @server.tool(annotations=RO)
    def items(n: int) -> dict[str, Any]:
        """A structured list."""
        return {"items": [{"id": i, "name": f"item{i}"} for i in range(n)]}

    @server.tool(annotations=RO)
    def flaky(key: str, fail_times: int) -> str:
        """Fails the first calls."""
        state["calls"][key] = state["calls"].get(key, 0) + 1
        if state["calls"][key] <= fail_times:
            raise ToolError(f"flaky {state['calls'][key]}")
        return "ok"

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def flaky_write(key: str) -> str:
        """A destructive tool that fails once."""
        state["calls"][key] = state["calls"].get(key, 0) + 1
        raise ToolError("write failed")

    @server.tool(annotations=RO)
    def echo_text(text: str, note: str = "") -> str:
        """Echo a string argument (the schema says string), recording what arrived."""
        state.setdefault("texts", []).append((text, note))
        return text

    @server.tool(annotations=RO)
    def keys(doc: dict[str, Any], anything: Any = None, either: str | dict[str, Any] = "") -> dict[str, Any]:
        """Take an object-typed argument, recording what arrived."""
        state.setdefault("keys", []).append({"doc": doc, "anything": anything, "either": either})
        return {"keys": sorted(doc)}

    @server.tool(annotations=RO)
    def twice(n: int) -> int:
        """A number-typed argument."""
        return n * 2

    @server.tool(annotations=RO)
    async def hang() -> str:
        """Never answers."""
        await anyio.sleep_forever()
        return ""

    return server


@asynccontextmanager
async def executor_for(state: dict[str, Any]) -> AsyncIterator[Executor]:
    async with McpHost(inproc={"mem": make_server(state)}) as host:

        async def call(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> Any:
            return await host.call(tool, args, timeout=timeout, progress=progress)

        yield Executor(call, describe=host.resolve, default_timeout_s=5)


async def run(state: dict[str, Any], *steps: dict[str, Any]) -> PlanRun:
    async with executor_for(state) as ex:
        return await ex.run(load_plan({"steps": list(steps)}))


async def test_every_ready_step_starts_at_once() -> None:
    state: dict[str, Any] = {"open": anyio.Event()}

    async def release() -> None:
        while state.get("running", 0) < 4:
            await anyio.sleep(0.01)
        state["open"].set()  # only reachable if all four were in flight together

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(release)
            result = await run(
                state,
                *({"id": f"n{i}", "tool": "mem.wait", "args": {"name": f"n{i}", "gate": "open"}} for i in range(4)),
            )
    assert result.ok and state["peak"] == 4
    assert result.metrics["parallel_width_max"] == 4


async def test_references_flow_between_steps() -> None:
    with anyio.fail_after(20):
        result = await run(
            {},
            {"id": "list", "tool": "mem.items", "args": {"n": 3}},
            {"id": "pick", "tool": "mem.wait", "args": {"name": "${list.items.2.name}"}},
            {"id": "join", "tool": "mem.wait", "args": {"name": "got ${pick} from ${list.items.0.name}"}},
        )
    assert result.steps["join"].result.text == "got item2 from item0"
    assert result.metrics["critical_path"] == ["list", "pick", "join"]


async def test_whole_string_references_follow_the_target_schema() -> None:
    """``${id}`` where the tool wants a string is the result's text; where it wants an object, the structure."""
    state: dict[str, Any] = {}
    with anyio.fail_after(20):
        result = await run(
            state,
            {"id": "list", "tool": "mem.items", "args": {"n": 2}},
            {"id": "as_text", "tool": "mem.echo_text", "args": {"text": "${list}", "note": "${list.items}"}},
            {"id": "num_text", "tool": "mem.echo_text", "args": {"text": "${list.items.1.id}"}},
            {"id": "as_object", "tool": "mem.keys", "args": {"doc": "${list}", "anything": "${list.items.0}"}},
            {"id": "either", "tool": "mem.keys", "args": {"doc": {"nested": "${list.items.0}"}, "either": "${list}"}},
            {"id": "number", "tool": "mem.twice", "args": {"n": "${list.items.1.id}"}},
            {"id": "embedded", "tool": "mem.echo_text", "args": {"text": "got ${list.items.0} and ${num_text}"}},
        )
    assert result.ok, {k: r.result.text for k, r in result.steps.items() if r.result.is_error}
    listed = result.steps["list"].result
    structure = {"items": [{"id": 0, "name": "item0"}, {"id": 1, "name": "item1"}]}
    assert listed.value() == structure
    # as_text, num_text and embedded run at once (each waits only on its references): find as_text's call.
    ((text, note),) = [(t, n) for t, n in state["texts"] if n]
    assert text == listed.text  # the tool's own text for the whole result, not a dict
    assert note == '[{"id":0,"name":"item0"},{"id":1,"name":"item1"}]'  # a walked structure: compact JSON
    assert result.steps["num_text"].result.text == "1"  # a number where a string is wanted: its text
    calls = sorted(state["keys"], key=lambda c: "nested" in c["doc"])
    assert calls[0] == {"doc": structure, "anything": {"id": 0, "name": "item0"}, "either": ""}  # objects stay
    assert calls[1] == {"doc": {"nested": {"id": 0, "name": "item0"}}, "anything": None, "either": structure}
    assert result.steps["number"].result.value() == 2  # number-typed: the number, not "1"
    assert result.steps["embedded"].result.text == 'got {"id":0,"name":"item0"} and 1'


async def test_string_coercion_needs_the_schema() -> None:
    """Without a ``describe`` (no schema known), values keep their type as before: the host refuses a dict."""
    async with McpHost(inproc={"mem": make_server({})}) as host:

        async def call(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> Any:
            return await host.call(tool, args, timeout=timeout, progress=progress)

        with anyio.fail_after(20):
            result = await Executor(call, default_timeout_s=5).run(
                load_plan(
                    {
                        "steps": [
                            {"id": "list", "tool": "mem.items", "args": {"n": 1}},
                            {"id": "text", "tool": "mem.echo_text", "args": {"text": "${list}"}},
                        ]
                    }
                )
            )
    bad = result.steps["text"].result
    assert bad.error_kind == "invalid_args" and "is not of type 'string'" in bad.text


async def test_failed_branch_skips_dependents_and_the_rest_finishes() -> None:
    with anyio.fail_after(20):
        result = await run(
            {},
            {"id": "bad", "tool": "mem.flaky", "args": {"key": "b", "fail_times": 9}, "retries": 0},
            {"id": "child", "tool": "mem.wait", "args": {"name": "${bad}"}},
            {"id": "grandchild", "tool": "mem.wait", "args": {"name": "${child}"}},
            {"id": "sees", "tool": "mem.wait", "args": {"name": "${bad.error}"}, "on_dep_error": "run"},
            {"id": "ok", "tool": "mem.wait", "args": {"name": "fine"}},
        )
    r = result.steps
    assert r["bad"].result.error_kind == "tool"
    assert r["child"].skipped and "skipped: step 'bad' failed (tool: " in r["child"].result.text
    assert r["grandchild"].skipped and "step 'child' failed" in r["grandchild"].result.text
    assert not r["sees"].result.is_error and "flaky" in r["sees"].result.text
    assert r["ok"].result.text == "fine"
    assert sorted(result.metrics["failed"]) == ["bad", "child", "grandchild"]


async def test_read_only_tools_are_retried_destructive_ones_are_not() -> None:
    state: dict[str, Any] = {}
    with anyio.fail_after(20):
        result = await run(
            state,
            {"id": "ro", "tool": "mem.flaky", "args": {"key": "ro", "fail_times": 1}},
            {"id": "rw", "tool": "mem.flaky_write", "args": {"key": "rw"}},
        )
    assert not result.steps["ro"].result.is_error and result.steps["ro"].result.attempts == 2
    assert result.steps["rw"].result.is_error and state["calls"]["rw"] == 1


async def test_timeouts_cost_the_timeout_and_are_not_retried_by_default() -> None:
    with anyio.fail_after(20):
        result = await run(
            {},
            {"id": "h", "tool": "mem.hang", "timeout_s": 0.2},
            {"id": "h2", "tool": "mem.hang", "timeout_s": 0.1, "retries": 1},
            {"id": "after", "tool": "mem.wait", "args": {"name": "x"}, "deps": ["h"]},
        )
    assert result.steps["h"].result.error_kind == "timeout" and result.steps["h"].result.attempts == 1
    assert result.steps["h2"].result.attempts == 2  # an explicit retries also covers timeouts
    assert result.steps["after"].skipped


async def test_broken_plans_fail_only_the_broken_steps() -> None:
    with anyio.fail_after(20):
        result = await run(
            {},
            {"id": "a", "tool": "mem.wait", "args": {"name": "${b}"}},
            {"id": "b", "tool": "mem.wait", "args": {"name": "${a}"}},
            {"id": "dangling", "tool": "mem.wait", "args": {"name": "${nothere.x}"}},
            {"id": "unknown", "tool": "mem.nosuch", "args": {}},
            {"id": "noserver", "tool": "ghost.tool", "args": {}},
            {"id": "badargs", "tool": "mem.items", "args": {"n": "three"}},
            {"id": "badpath", "tool": "mem.wait", "args": {"name": "${fine.items}"}},
            {"id": "fine", "tool": "mem.wait", "args": {"name": "fine"}},
        )
    r = result.steps
    assert "dependency cycle" in r["a"].result.text and "dependency cycle" in r["b"].result.text
    assert r["dangling"].result.text == "step 'dangling' references unknown step(s) nothere"
    assert r["unknown"].result.error_kind == "unknown_tool"
    assert r["noserver"].result.error_kind == "unknown_tool"
    assert r["badargs"].result.error_kind == "invalid_args"
    assert r["badpath"].result.error_kind == "plan" and "no 'items' in the text result" in r["badpath"].result.text
    assert r["fine"].result.text == "fine"
    assert set(result.to_json()["results"]) == set(r)  # every step appears


async def test_metrics_shape() -> None:
    with anyio.fail_after(20):
        result = await run(
            {},
            {"id": "a", "tool": "mem.wait", "args": {"name": "a"}},
            {"id": "b", "tool": "mem.wait", "args": {"name": "b"}, "deps": ["a"]},
        )
    m = result.metrics
    assert m["critical_path"] == ["a", "b"] and m["steps"] == 2 and m["failed"] == []
    assert set(m) >= {"makespan_s", "critical_path_s", "parallel_width_max", "parallel_width_mean", "step_timing"}
    assert m["step_timing"]["a"]["end_s"] <= m["step_timing"]["b"]["start_s"]
