"""A stdio MCP server with tools of known behaviour, for tests and bench/tools.py.

Run: ``python -m tests.mcp_servers.slow_server [--fail-start] [--duplicate] [--http PORT]``.
Environment: ``SLOW_SERVER_LOG``, a file where ``write_note`` logs start/end stamps and ``hang`` its cancellation.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ListToolsResult, PaginatedRequestParams, ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False)

server = MCPServer("slow", instructions="Tools of known duration and failure modes, for tests.")
_flaky_counts: dict[str, int] = {}


def _log(event: dict[str, Any]) -> None:
    path = os.environ.get("SLOW_SERVER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")


@server.tool(annotations=READ_ONLY)
async def sleep(seconds: float) -> str:
    """Wait for the given number of seconds, then say so."""
    await anyio.sleep(seconds)
    return f"slept {seconds:g}"


@server.tool(annotations=READ_ONLY)
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool(annotations=READ_ONLY)
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool(annotations=READ_ONLY)
def lookup(city: str) -> dict[str, Any]:
    """Structured facts about a city (a fixed table)."""
    table = {
        "paris": {"country": "France", "population": 2_100_000},
        "tokyo": {"country": "Japan", "population": 14_000_000},
    }
    if city.lower() not in table:
        raise ToolError(f"unknown city {city!r}")
    return table[city.lower()]


@server.tool(annotations=READ_ONLY)
async def progress(steps: int, interval: float = 0.1, ctx: Context | None = None) -> str:
    """Report progress ``steps`` times, ``interval`` seconds apart, then finish."""
    for i in range(steps):
        await anyio.sleep(interval)
        if ctx is not None:
            await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
    return f"done after {steps} steps"


@server.tool(annotations=READ_ONLY)
def fail(message: str = "this tool always fails") -> str:
    """Always fail with the given message."""
    raise ToolError(message)


@server.tool(annotations=READ_ONLY)
def flaky(key: str, fail_times: int) -> str:
    """Fail the first ``fail_times`` calls for ``key``, then succeed."""
    _flaky_counts[key] = _flaky_counts.get(key, 0) + 1
    if _flaky_counts[key] <= fail_times:
        raise ToolError(f"flaky failure {_flaky_counts[key]} of {fail_times}")
    return f"ok after {_flaky_counts[key]} calls"


@server.tool(annotations=READ_ONLY)
async def hang(tag: str = "") -> str:
    """Never answer (until cancelled)."""
    try:
        await anyio.sleep_forever()
    finally:
        _log({"event": "hang_cancelled", "tag": tag, "t": time.time()})
    return "unreachable"


@server.tool()
def garbage() -> str:
    """Write a line that is not JSON-RPC onto the protocol stream, then answer normally."""
    os.write(sys.stdout.fileno(), b"this is not json-rpc\n")
    return "answered after garbage"


@server.tool()
def exit_now(code: int = 3) -> str:
    """Kill the server process mid-call."""
    os._exit(code)


@server.tool(annotations=DESTRUCTIVE)
async def write_note(name: str, text: str, seconds: float = 0.1) -> str:
    """Append a note (destructive: changes state); logs when it starts and ends."""
    _log({"event": "write_start", "name": name, "t": time.time()})
    await anyio.sleep(seconds)
    _log({"event": "write_end", "name": name, "t": time.time()})
    return f"wrote {len(text)} chars to {name}"


def main() -> None:
    if os.environ.get("SLOW_SERVER_STDERR"):
        print(f"slow_server: starting with {os.environ['SLOW_SERVER_STDERR']}", file=sys.stderr, flush=True)
    if "--fail-start" in sys.argv:
        print("slow_server: refusing to start (--fail-start)", file=sys.stderr)
        sys.exit(2)
    if "--duplicate" in sys.argv:
        original = server._handle_list_tools

        async def listed_twice(ctx: Any, params: Any) -> ListToolsResult:
            result = await original(ctx, params)
            return ListToolsResult(tools=[*result.tools, result.tools[0]])

        server._lowlevel_server.add_request_handler("tools/list", PaginatedRequestParams, listed_twice)
    if "--http" in sys.argv:
        port = int(sys.argv[sys.argv.index("--http") + 1])
        server.run("streamable-http", host="127.0.0.1", port=port)
    else:
        server.run()


if __name__ == "__main__":
    main()
