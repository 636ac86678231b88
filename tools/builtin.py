"""Built-in tools as in-process MCP servers, reached through the SDK's in-memory transport, so they take the
same path (catalog, access checks, timeouts, parallelism, logging) as any external server.

- ``time``: the clock (``time.now``, ``time.sleep``).

The servers that expose the kernel's syscalls as tools are the kernel's (``kernel.svc_tools``): this package
never imports ``kernel``.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

__all__ = ["RESERVED_SERVER_NAMES", "quiet_mcpserver", "time_server"]

log = logging.getLogger(__name__)

#: Server names kept for built-ins (the clock and every syscall family): no plugin's tools may take them.
RESERVED_SERVER_NAMES: frozenset[str] = frozenset({"time", "fs", "mem", "task", "proc", "tool", "llm", "audit"})


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
