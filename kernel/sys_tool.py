"""``tool.*`` syscalls: the MCP catalog, tool calls and tool plans, for agents.

Every call names its resource as ``Access("tool", "server.tool", args=...)`` (plus ``Access("net", ...)`` when
the server is configured with ``egress``), so access control decides it from the agent's ``tools`` /
``tools_ask`` / ``tools_deny`` globs. A plan's steps are each dispatched as ``tool.call`` by the same process:
one path, one check, one audit row per call. Tool failures come back as values (``is_error``), not errors.

While a call runs the process is ``waiting_tool`` (until the last of a plan's overlapping calls ends) and the
kernel publishes ``ToolCallStarted``, one ``ToolProgressed`` per progress notification and ``ToolCallFinished``,
so front ends (the TUI, ``SocketClient.subscribe``) can follow it; ``tool_calls`` / ``tool_s`` account for it.
"""

from __future__ import annotations

import builtins  # ToolsFacade.list shadows the builtin inside the class
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from aios.errors import AiosError, UsageError
from kernel.events import ProcessStateChanged, ToolCallFinished, ToolCallStarted, ToolProgressed
from kernel.process import ProcState
from kernel.syscalls import Access, Request, syscall

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process
    from tools.host import McpHost
    from tools.results import ErrorKind


#: How long a catalog listing waits for servers that are still starting (a failed one is left out).
CATALOG_WAIT_S = 10.0


def _host(kernel: Kernel) -> McpHost:
    host = kernel.services.get("mcp")
    if host is None:
        raise UsageError("the MCP host is not running", "see the kernel log for why it failed to start")
    return host


class ToolListRequest(Request):
    schemas: bool = False


class ToolSearchRequest(Request):
    query: str = Field(min_length=1, max_length=2000)
    limit: int = Field(8, ge=1, le=50)
    schemas: bool = True


class ToolCallRequest(Request):
    tool: str = Field(min_length=3, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, le=86400)


class ToolPlanRequest(Request):
    steps: list[dict[str, Any]] = Field(min_length=1, max_length=1000)
    timeout_s: float | None = Field(None, gt=0, le=86400)


class ToolServersRequest(Request):
    pass


def _call_access(kernel: Kernel, proc: Process, request: ToolCallRequest) -> list[Access]:
    host = kernel.services.get("mcp")
    entry = host.catalog.get(request.tool) if host is not None else None
    # write=True marks calls with side effects (not annotated read-only), for policies that ask about those.
    accesses = [Access("tool", request.tool, write=entry is None or not entry.read_only, args=request.args)]
    owner = host.owners.get(request.tool.partition(".")[0]) if host is not None else None
    if owner is not None and owner.config.egress:
        accesses.append(Access("net", request.tool))
    return accesses


@syscall("tool.list", ToolListRequest, access=lambda k, p, r: [])
async def tool_list(kernel: Kernel, proc: Process, request: ToolListRequest) -> dict[str, Any]:
    """The tools (and prompts, resources) this process may use, as server.name with signatures."""
    from tools.catalog import visible_to

    host = _host(kernel)
    await host.start_all(CATALOG_WAIT_S, skip_failed=True)
    catalog = host.catalog
    return {
        "tools": [t.to_json(schema=request.schemas) for t in catalog.view(proc.caps)],
        "prompts": [
            {"name": p.name, "description": p.description, "arguments": list(p.arguments)}
            for p in catalog.prompts
            if visible_to(proc.caps, p.name)
        ],
        "resources": [
            {"uri": r.uri, "server": r.server, "name": r.name, "description": r.description, "mime_type": r.mime_type}
            for r in catalog.resources
            if visible_to(proc.caps, f"{r.server}.resources")
        ],
    }


@syscall("tool.search", ToolSearchRequest, access=lambda k, p, r: [])
async def tool_search(kernel: Kernel, proc: Process, request: ToolSearchRequest) -> dict[str, Any]:
    """Rank the tools this process may call for a task description (keyword + embeddings)."""
    from kernel.blocking import run_blocking

    host = _host(kernel)
    await host.start_all(CATALOG_WAIT_S, skip_failed=True)
    ranked = await run_blocking(host.catalog.search, request.query, caps=proc.caps, limit=request.limit, pool="search")
    return {"tools": [{**t.to_json(schema=request.schemas), "score": s} for t, s in ranked]}


@syscall("tool.call", ToolCallRequest, access=_call_access)
async def tool_call(kernel: Kernel, proc: Process, request: ToolCallRequest) -> dict[str, Any]:
    """Call one MCP tool; the result (or the error, timeout or cancellation) comes back as a value."""
    from kernel.svc_tools import PID_META_KEY

    host = _host(kernel)
    call = proc.tool_call_seq = proc.tool_call_seq + 1
    tool = request.tool
    events = kernel.events

    async def progress(value: float, total: float | None, message: str | None) -> None:
        events.publish(ToolProgressed(proc.pid, call, tool, value, total, message))

    started = time.perf_counter()
    events.publish(ToolCallStarted(proc.pid, call, tool))
    result = None
    try:
        async with _waiting_tool(kernel, proc, tool):
            result = await host.call(
                tool, dict(request.args), timeout=request.timeout_s, progress=progress, meta={PID_META_KEY: proc.pid}
            )
    finally:
        if result is None:  # cancelled (the process killed): front ends still see the call end
            outcome, is_error = "cancelled", True
        else:
            outcome, is_error = (result.error_kind or "tool") if result.is_error else "ok", result.is_error
        events.publish(ToolCallFinished(proc.pid, call, tool, is_error, outcome, time.perf_counter() - started))
    return result.to_json()


def _show_state(kernel: Kernel, proc: Process, state: ProcState) -> None:
    """``Kernel.set_state`` without writing the processes row: ``waiting_tool`` is transient, and a SQLite
    commit on each side of every call cost ~1.8 ms a call (10x the rest of the syscall path). The row keeps
    ``running``; the accounting reaches it with the process's next write."""
    if proc.state.terminal:
        return
    if proc.suspended and state is not ProcState.SUSPENDED:
        proc.resume_state = state  # shown again on resume
        return
    if proc.state is not state:
        proc.state = state
        kernel.events.publish(ProcessStateChanged(proc.pid, state.value))


@asynccontextmanager
async def _waiting_tool(kernel: Kernel, proc: Process, tool: str) -> AsyncIterator[None]:
    """``waiting_tool`` for the block (nested for a plan's overlapping calls), counted in the accounting; the
    engine is told when the process is expected back (the tool's learned duration), and the duration learned."""
    if proc.tools_in_flight == 0:
        proc.tool_wait_since = time.perf_counter()
        _show_state(kernel, proc, ProcState.WAITING_TOOL)
    proc.tools_in_flight += 1
    proc.accounting.tool_calls += 1
    started = time.perf_counter()
    expected = kernel.tool_times.expected(tool)
    if expected is not None:  # back when the last call in flight ends
        first = proc.tools_in_flight == 1
        proc.tool_back_at = started + expected if first else max(proc.tool_back_at, started + expected)
        kernel.engine.expect_back(proc.pid, proc.tool_back_at - started)
    try:
        yield
    finally:
        kernel.tool_times.observe(tool, time.perf_counter() - started)
        proc.tools_in_flight -= 1
        if proc.tools_in_flight == 0:
            proc.accounting.tool_s += time.perf_counter() - proc.tool_wait_since
            # Back to running (or, if suspended meanwhile, shown on resume); a state set since then
            # (say waiting_approval for another step) is left for its owner to restore.
            if proc.state is ProcState.WAITING_TOOL or proc.suspended:
                _show_state(kernel, proc, ProcState.RUNNING)


@syscall("tool.plan", ToolPlanRequest, access=lambda k, p, r: [])
async def tool_plan(kernel: Kernel, proc: Process, request: ToolPlanRequest) -> dict[str, Any]:
    """Run a typed plan (steps with ``${id.path}`` references) in parallel; each step is a checked tool.call."""
    from tools.executor import Executor
    from tools.plan import load_plan
    from tools.results import ToolResult

    host = _host(kernel)
    plan = load_plan({"steps": request.steps, "timeout_s": request.timeout_s}, source="tool.plan")

    async def call(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> ToolResult:
        payload: dict[str, Any] = {"tool": tool, "args": args}
        if timeout is not None:
            payload["timeout_s"] = timeout
        try:
            out = await kernel.dispatch(proc, "tool.call", payload)
        except AiosError as exc:
            kind: ErrorKind = "denied" if exc.exit_code == 3 else "invalid_args"
            return ToolResult.error(kind, exc.one_line())
        return ToolResult(
            text=out["text"],
            is_error=out["is_error"],
            elapsed_s=out["elapsed_s"],
            structured=out.get("structured"),
            error_kind=out.get("error_kind"),
        )

    try:
        run = await Executor(call, describe=host.resolve).run(plan)
    finally:
        # An approval asked while another step ran restores waiting_tool; a refusal leaves no call to end it.
        if proc.tools_in_flight == 0 and proc.state is ProcState.WAITING_TOOL:
            _show_state(kernel, proc, ProcState.RUNNING)
    return run.to_json()


@syscall("tool.servers", ToolServersRequest, access=lambda k, p, r: [])
async def tool_servers(kernel: Kernel, proc: Process, request: ToolServersRequest) -> dict[str, Any]:
    """The configured MCP servers and their state (secrets redacted)."""
    return {"servers": _host(kernel).servers()}


class ToolTestRequest(Request):
    server: str = Field(min_length=1, max_length=100)


async def test_server(name: str, config: Any, caps: Any = None) -> dict[str, Any]:
    """Start one server on its own host (never the kernel's), list its tools (those ``caps`` may see), stop it."""
    from tools.host import McpHost

    async with McpHost({name: config}) as host:
        started = time.perf_counter()
        await host.start_all()
        info = dict(host.servers()[0])
        info["start_s"] = round(time.perf_counter() - started, 3)
        info["protocol_version"] = host.owners[name].protocol_version
        info["tool_list"] = [t.to_json() for t in host.catalog.view(caps)]
        return info


@syscall("tool.test", ToolTestRequest, access=lambda k, p, r: [Access("tool", f"{r.server}.*")])
async def tool_test(kernel: Kernel, proc: Process, request: ToolTestRequest) -> dict[str, Any]:
    """Start one configured server apart from the kernel's host, list its tools, stop it (`aios mcp test`)."""
    from aios.errors import ConfigError
    from kernel.blocking import run_blocking
    from tools.config import load_servers_lenient

    servers, broken = await run_blocking(load_servers_lenient, None, pool="db")
    if request.server in broken:
        raise ConfigError(broken[request.server])
    if request.server not in servers:
        raise UsageError(f"no MCP server {request.server!r}", f"configured: {', '.join(servers) or 'none'}")
    return await test_server(request.server, servers[request.server], proc.caps)


class ToolTryRequest(Request):
    """Servers tried before they are added: another mcp.json's (an absolute path) and/or servers given inline
    (a plan file's own), started apart from the kernel's host for this one call."""

    action: Literal["test", "tools", "call", "plan"]
    mcp_config: str | None = Field(None, min_length=1, max_length=4096)
    servers: dict[str, Any] = Field(default_factory=dict, max_length=50)
    server: str | None = Field(None, min_length=1, max_length=100)
    query: str | None = Field(None, min_length=1, max_length=2000)
    schemas: bool = False
    tool: str | None = Field(None, min_length=3, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0, le=86400)
    plan: dict[str, Any] | None = None


def _try_access(kernel: Any, proc: Process, request: ToolTryRequest) -> list[Access]:
    """The file the servers come from (a read), and each tool the call may use (each of a plan's steps)."""
    import os

    from tools.plan import load_plan

    accesses = []
    if request.mcp_config:
        accesses.append(Access("file", os.path.abspath(os.path.expanduser(request.mcp_config))))
    if request.action == "test":
        accesses.append(Access("tool", f"{request.server or ''}.*"))
    elif request.action == "call":
        accesses.append(Access("tool", request.tool or "", write=True, args=request.args))
    elif request.action == "plan":
        plan = load_plan(request.plan or {}, source="plan")
        accesses += [Access("tool", step.tool, write=True, args=step.args) for step in plan.steps]
    return accesses  # a listing shows only what the caller may see


@syscall("tool.try", ToolTryRequest, access=_try_access)
async def tool_try(kernel: Any, proc: Process, request: ToolTryRequest) -> dict[str, Any]:
    """Try servers before adding them (`--mcp-config`, a plan file's own servers): start them apart from the
    kernel's host, then test one, list or search their tools, call one, or run a plan; stop them."""
    from pathlib import Path

    from kernel.blocking import run_blocking
    from kernel.svc_tools import builtin_servers
    from tools.config import load_servers_lenient, parse_servers
    from tools.executor import Executor
    from tools.host import McpHost
    from tools.plan import load_plan

    servers: dict[str, Any] = {}
    warnings: list[str] = []
    if request.mcp_config:
        servers, broken = await run_blocking(load_servers_lenient, Path(request.mcp_config), pool="db")
        if request.action == "test" and request.server in broken:
            from aios.errors import ConfigError

            raise ConfigError(broken[request.server])
        warnings = [f"{reason}; that server is left out" for reason in broken.values()]
    if request.servers:
        servers.update(parse_servers({"mcpServers": request.servers}, source="plan servers"))
    if request.action == "test":
        if request.server not in servers:
            raise UsageError(f"no MCP server {request.server!r}", f"it has: {', '.join(servers) or 'none'}")
        return {"warnings": warnings, "result": await test_server(request.server, servers[request.server], proc.caps)}
    async with McpHost(servers, inproc=builtin_servers(None)) as host:
        if request.action == "tools":
            await host.start_all()
            if request.query:
                ranked = await run_blocking(host.catalog.search, request.query, caps=proc.caps, pool="search")
                result: Any = [{**e.to_json(schema=request.schemas), "score": score} for e, score in ranked]
            else:
                result = [e.to_json(schema=request.schemas) for e in host.catalog.view(proc.caps)]
        elif request.action == "call":
            if not request.tool:
                raise UsageError("tool.try call needs a tool")
            result = (await host.call(request.tool, request.args, timeout=request.timeout_s)).to_json()
        else:
            plan = load_plan(request.plan or {}, source="plan")

            async def call_tool(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> Any:
                return await host.call(tool, args, timeout=timeout, progress=progress)

            result = (await Executor(call_tool, describe=host.resolve).run(plan)).to_json()
    return {"warnings": warnings, "result": result}


class ToolsFacade:
    """``ctx.tools``: the ``tool.*`` syscalls with Python signatures (each one ``ctx.call``)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    async def list(self, *, schemas: bool = False) -> list[dict[str, Any]]:
        return list((await self._ctx.call("tool.list", schemas=schemas))["tools"])

    async def search(self, query: str, *, limit: int = 8) -> builtins.list[dict[str, Any]]:
        return list((await self._ctx.call("tool.search", query=query, limit=limit))["tools"])

    async def call(self, tool: str, timeout_s: float | None = None, /, **args: Any) -> dict[str, Any]:
        """``await ctx.tools.call("git.git_log", repo_path=".")``: a result value (check ``is_error``)."""
        payload: dict[str, Any] = {"tool": tool, "args": args}
        if timeout_s is not None:
            payload["timeout_s"] = timeout_s
        return dict(await self._ctx.call("tool.call", **payload))

    async def plan(self, steps: builtins.list[dict[str, Any]], *, timeout_s: float | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"steps": steps}
        if timeout_s is not None:
            payload["timeout_s"] = timeout_s
        return dict(await self._ctx.call("tool.plan", **payload))


class ToolProposeRequest(Request):
    goal: str = Field(min_length=1, max_length=4000)
    candidates: int = Field(3, ge=1, le=8)
    #: What failed last time (tool errors, invalid steps): the model writes a corrected plan.
    feedback: str = Field("", max_length=4000)
    #: Which tools may be proposed, by side effect (read-only by default: a small model's plan runs unreviewed).
    side_effects: list[str] = Field(default_factory=lambda: ["read_only"], min_length=1, max_length=4)


@syscall("tool.propose", ToolProposeRequest, access=lambda k, p, r: [])
async def tool_propose(kernel: Kernel, proc: Process, request: ToolProposeRequest) -> dict[str, Any]:
    """A plan for ``goal``, not run: the few tools ``tool.search`` ranks first among those the caller may use,
    and steps the model writes under a grammar built from their schemas (one ``llm.chat`` of the caller).
    ``problems`` says what is wrong with it (empty: ``valid``); run it with ``tool.plan``."""
    from kernel.context import ProcessContext
    from tools.planner import Planner

    planner = Planner(
        ProcessContext(kernel, proc), candidates=request.candidates, side_effects=tuple(request.side_effects)
    )
    attempt = await planner.write_plan(request.goal, await planner.candidates(request.goal), request.feedback)
    return {
        "candidates": attempt.candidates,
        "steps": attempt.steps,
        "valid": attempt.valid,
        "problems": attempt.problems,
    }
