"""The kernel's tool service (``kernel.services["mcp"]``) and the built-in servers that expose table syscalls.

- ``open_service(kernel)``: the kernel's ``tools.host.McpHost``, with the servers from mcp.json, the clock
  (``tools.builtin.time_server``), one server per plugin that registers tools and one per syscall family.
- one server per kernel syscall family that has table syscalls (``fs``, ``mem``, ``task``; tests may add
  ``proc``): each table syscall ``family.verb`` becomes tool ``verb`` of server ``family``, so the tool's
  qualified name is the syscall's name. Its input schema is generated from the syscall's pydantic request
  model, and the call goes through ``kernel.dispatch`` as the calling process (its pid rides in the
  request's ``_meta``, which only in-process callers can set), so the syscall's own access checks apply.

They reach the servers through the SDK's in-memory transport, so they take the same path (catalog, access
checks, timeouts, parallelism, logging) as any external server. ``tools/`` knows nothing of the kernel.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server import Server
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations

from aios.errors import AiosError
from kernel.syscall_table import load_syscalls
from kernel.syscalls import SYSCALLS
from tools.builtin import RESERVED_SERVER_NAMES, time_server
from tools.config import load_servers_lenient
from tools.host import McpHost
from tools.owner import ElicitHandler
from tools.plugin_tools import plugin_servers

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

__all__ = [
    "PID_META_KEY",
    "SYSCALL_FAMILIES",
    "builtin_servers",
    "elicit_handler",
    "is_read_verb",
    "open_service",
    "syscall_server",
    "syscall_tools",
]

log = logging.getLogger(__name__)

PID_META_KEY = "aios/pid"
SYSCALL_FAMILIES: tuple[str, ...] = ("fs", "mem", "task")
#: Verbs (or their first word) that only read; everything else is marked destructive, MCP's default.
_READ_VERBS = frozenset(
    {
        "search",
        "get",
        "list",
        "read",
        "show",
        "stat",
        "diff",
        "recall",
        "query",
        "find",
        "status",
        "self",
        "log",
        "cat",
        "ls",
        "mounts",
        "history",
        "compare",
        "summarize",
        "ask",
        "path",
        "prompt",
        "core_get",
        "children",
    }
)


def is_read_verb(verb: str) -> bool:
    return verb in _READ_VERBS or verb.split("_")[0] in _READ_VERBS


def syscall_tools(family: str) -> list[Tool]:
    """MCP tool definitions for the table syscalls of ``family``, schemas from their request models."""
    load_syscalls()
    tools = []
    for name, spec in sorted(SYSCALLS.items()):
        fam, _, verb = name.partition(".")
        if fam != family:
            continue
        read = is_read_verb(verb)
        schema = spec.request.model_json_schema()
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        tools.append(
            Tool(
                name=verb,
                description=spec.description or f"The {name} syscall.",
                input_schema=schema,
                annotations=ToolAnnotations(read_only_hint=read, destructive_hint=not read, open_world_hint=False),
            )
        )
    return tools


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def syscall_server(
    family: str, kernel: Kernel, default_proc: Callable[[], Process | None] | None = None
) -> Server[Any]:
    """A low-level MCP server whose tools are ``family``'s table syscalls, dispatched through the kernel."""
    tools = syscall_tools(family)

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        meta = dict(ctx.meta or {})
        proc = None
        pid = meta.get(PID_META_KEY)
        if isinstance(pid, int):
            try:  # pid 0: the user principal (a tool.call from a front end)
                proc = kernel.user if pid == 0 else kernel.process(pid)
            except AiosError:
                proc = None
        if proc is None and default_proc is not None:
            proc = default_proc()
        if proc is None:
            return CallToolResult(content=[TextContent(type="text", text="no calling process")], is_error=True)
        try:
            value = await kernel.dispatch(proc, f"{family}.{params.name}", dict(params.arguments or {}))
        except AiosError as exc:
            return CallToolResult(content=[TextContent(type="text", text=exc.one_line())], is_error=True)
        structured = value if isinstance(value, dict) else {"result": value}
        return CallToolResult(content=[TextContent(type="text", text=_text(value))], structured_content=structured)

    return Server(family, on_list_tools=list_tools, on_call_tool=call_tool)


def builtin_servers(kernel: Kernel | None, families: Sequence[str] = SYSCALL_FAMILIES) -> dict[str, Any]:
    """The in-process servers the kernel's host starts at boot: ``time`` plus one per syscall family present."""
    servers: dict[str, Any] = {"time": time_server()}
    if kernel is not None:
        present = {name.split(".", 1)[0] for name in SYSCALLS}
        for family in families:
            if family in present:
                servers[family] = syscall_server(family, kernel)
    return servers


def elicit_handler(kernel: Kernel) -> ElicitHandler:
    """Servers' elicitation requests go to the approval broker (front ends see a form request); audited as
    ``tool.elicit`` (the action and the field names, not the values)."""

    async def elicit(
        server: str, message: str, schema: dict[str, Any], meta: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        proc = None
        pid = (meta or {}).get(PID_META_KEY)
        if isinstance(pid, int) and pid > 0:
            try:
                proc = kernel.process(pid)
            except AiosError:
                proc = None
        action, content, why = await kernel.approval_broker.elicit(proc, server, message, schema)
        kernel.audit.record(
            pid=proc.pid if proc is not None else None,
            agent=proc.agent if proc is not None else kernel.user.agent,
            token_id=kernel.tokens.token_id(proc.pid) if proc is not None else "",
            syscall="tool.elicit",
            resource=f"mcp:{server}",
            decision="allow" if action == "accept" else "deny",
            reason=f"{message[:200]}; {why}",
            detail={"action": action, "fields": sorted(content or {})},
        )
        return action, content

    return elicit


@asynccontextmanager
async def open_service(kernel: Kernel) -> AsyncIterator[McpHost]:
    """The kernel's MCP host: servers from mcp.json, the built-in in-process servers and one in-process
    server per plugin that registers tools (``register_tools``; named after the plugin).

    The host (and the task group its owners live in) runs in a task of its own in the kernel's task group,
    so its cancel scopes are entered and left in one task whatever order the kernel unwinds in.
    """
    try:
        servers, broken = load_servers_lenient()
    except Exception as exc:
        log.error("mcp.json not loaded: %s", exc)
        servers, broken = {}, {}
    for name, reason in broken.items():
        log.error("MCP server %s left out: %s", name, reason)
    stop, done = anyio.Event(), anyio.Event()

    async def run_host(*, task_status: anyio.abc.TaskStatus[McpHost] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            builtins = builtin_servers(kernel)
            plugins = plugin_servers(kernel.plugins, reserved={*RESERVED_SERVER_NAMES, *builtins})
            async with McpHost(servers, inproc={**plugins, **builtins}, elicit=elicit_handler(kernel)) as host:
                task_status.started(host)
                await stop.wait()
        finally:
            done.set()

    tg = kernel.task_group
    if tg is None:
        raise RuntimeError("the MCP host service needs a running kernel")
    host = await tg.start(run_host, name="aios-mcp-host")
    try:
        yield host
    finally:
        stop.set()
        with anyio.CancelScope(shield=True), anyio.move_on_after(20):
            await done.wait()
