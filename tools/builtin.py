"""Built-in tools as in-process MCP servers, reached through the SDK's in-memory transport, so they take the
same path (catalog, access checks, timeouts, parallelism, logging) as any external server.

- ``time``: the clock (``time.now``, ``time.sleep``).
- one server per kernel syscall family that has table syscalls (``fs``, ``mem``, ``task``; tests may add
  ``proc``): each table syscall ``family.verb`` becomes tool ``verb`` of server ``family``, so the tool's
  qualified name is the syscall's name. Its input schema is generated from the syscall's pydantic request
  model, and the call goes through ``kernel.dispatch`` as the calling process (its pid rides in the
  request's ``_meta``, which only in-process callers can set), so the syscall's own access checks apply.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations

from aios.errors import AiosError

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

__all__ = [
    "PID_META_KEY",
    "RESERVED_SERVER_NAMES",
    "SYSCALL_FAMILIES",
    "builtin_servers",
    "quiet_mcpserver",
    "syscall_server",
    "syscall_tools",
    "time_server",
]

log = logging.getLogger(__name__)

PID_META_KEY = "aios/pid"
SYSCALL_FAMILIES: tuple[str, ...] = ("fs", "mem", "task")
#: Server names kept for built-ins (the clock and every syscall family): no plugin's tools may take them.
RESERVED_SERVER_NAMES: frozenset[str] = frozenset({"time", "fs", "mem", "task", "proc", "tool", "llm", "audit"})
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


def quiet_mcpserver(name: str, **kwargs: Any) -> MCPServer:
    """An ``MCPServer`` that does not configure the host's root logger (the SDK calls ``basicConfig``)."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        return MCPServer(name, **kwargs)
    finally:
        root.removeHandler(guard)


def time_server() -> MCPServer:
    server = quiet_mcpserver("time", instructions="The current time.")
    ro = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

    @server.tool(annotations=ro)
    def now(timezone: str = "UTC") -> dict[str, Any]:
        """The current date and time in an IANA timezone (e.g. Europe/Paris), ISO 8601 and as a Unix time."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown timezone {timezone!r}") from None
        moment = dt.datetime.now(zone)
        return {"iso": moment.isoformat(timespec="seconds"), "timezone": timezone, "unix": moment.timestamp()}

    @server.tool(annotations=ro)
    async def sleep(seconds: float) -> str:
        """Wait ``seconds`` (at most 3600), then return."""
        if not 0 <= seconds <= 3600:
            raise ToolError("seconds must be between 0 and 3600")
        await anyio.sleep(seconds)
        return f"slept {seconds:g}s"

    return server


def is_read_verb(verb: str) -> bool:
    return verb in _READ_VERBS or verb.split("_")[0] in _READ_VERBS


def syscall_tools(family: str) -> list[Tool]:
    """MCP tool definitions for the table syscalls of ``family``, schemas from their request models."""
    from kernel.syscall_table import load_syscalls
    from kernel.syscalls import SYSCALLS

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
            try:
                proc = kernel.process(pid)
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
    from kernel.syscalls import SYSCALLS

    servers: dict[str, Any] = {"time": time_server()}
    if kernel is not None:
        present = {name.split(".", 1)[0] for name in SYSCALLS}
        for family in families:
            if family in present:
                servers[family] = syscall_server(family, kernel)
    return servers
