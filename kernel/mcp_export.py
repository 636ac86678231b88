"""``aios mcp serve``: aios's table syscalls (``fs.*``, ``mem.*``, ``task.*``) as an MCP server.

Any MCP client (Claude Desktop, Cursor, the SDK's client) sees one tool per syscall, named like the syscall,
with an ``inputSchema`` generated from the syscall's pydantic request model. Calls run as a kernel process
whose capability set the user chose on the command line, through ``Kernel.dispatch``: validated, checked by
access control, audited, exactly as an agent's call.
"""

from __future__ import annotations

import fnmatch
import logging
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from mcp_types import CallToolRequestParams, CallToolResult, ListToolsResult, PaginatedRequestParams, TextContent

from aios import paths
from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError, UsageError
from aios.hookspecs import hookimpl
from kernel.svc_tools import SYSCALL_FAMILIES, syscall_tools
from tools.builtin import quiet_mcpserver
from tools.http_auth import BearerAuth, Listen, TokenFile, parse_listen

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from kernel.kernel import Kernel
    from kernel.process import Process

__all__ = ["export_server", "export_tools", "serve_mcp"]

log = logging.getLogger(__name__)


def export_tools(families: Sequence[str], allow: Sequence[str] = ()) -> list[Any]:
    """The syscall tools to expose: those matching ``allow`` globs, or (no globs) the read-only ones."""
    tools = []
    for family in families:
        for tool in syscall_tools(family):
            name = f"{family}.{tool.name}"
            wanted = (
                any(fnmatch.fnmatchcase(name, p) for p in allow)
                if allow
                else bool(tool.annotations and tool.annotations.read_only_hint)
            )
            if wanted:
                tools.append(tool.model_copy(update={"name": name}))
    return tools


def export_server(
    kernel: Kernel, proc: Callable[[], Process], families: Sequence[str], allow: Sequence[str]
) -> MCPServer:
    server = quiet_mcpserver("aios", instructions="aios: semantic file system, agent memory and task trees.")
    tools = export_tools(families, allow)
    names = {t.name for t in tools}

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        if params.name not in names:
            text = f"unknown or not exposed tool {params.name!r} (exposed: {', '.join(sorted(names)) or 'none'})"
            return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)
        try:
            value = await kernel.dispatch(proc(), params.name, dict(params.arguments or {}))
        except AiosError as exc:
            return CallToolResult(content=[TextContent(type="text", text=exc.one_line())], is_error=True)
        import json

        text = value if isinstance(value, str) else json.dumps(value, default=str)
        structured = value if isinstance(value, dict) else {"result": value}
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)

    low = server._lowlevel_server
    low.add_request_handler("tools/list", PaginatedRequestParams, list_tools)
    low.add_request_handler("tools/call", CallToolRequestParams, call_tool)
    return server


def _holder(caps: Capabilities) -> type[Agent]:
    class McpServeAgent(Agent):
        manifest = Manifest(
            name="mcp-serve", description="Holds the identity of `aios mcp serve` clients.", capabilities=caps
        )

        async def run(self, ctx: Context, goal: str) -> str | None:
            await anyio.sleep_forever()
            return None

    return McpServeAgent


class _HolderPlugin:
    def __init__(self, agent: type[Agent]) -> None:
        self.agent = agent

    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [self.agent]


async def serve_mcp(
    caps: Capabilities,
    *,
    http: str | None = None,
    families: Sequence[str] | None = None,
    allow_remote: bool = False,
    token_file: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve over stdio, or over streamable HTTP (``http`` = HOST:PORT) behind a bearer token.

    The HTTP app is the SDK's own (``streamable_http_app``), wrapped in :class:`tools.http_auth.BearerAuth`
    and run under uvicorn here. The token file must exist (``tools.http_auth.ensure_token``); ``on_ready``
    gets the URL once the port is listening.
    """
    listen = parse_listen(http, allow_remote=allow_remote) if http else None
    token_file = token_file or paths.mcp_http_token_path()
    if listen is not None and not token_file.exists():
        raise UsageError(f"no bearer token at {token_file}", "run `aios mcp token --rotate` to make one")
    allow = caps.tools
    families = tuple(families or SYSCALL_FAMILIES)
    plugin = _HolderPlugin(_holder(caps))
    sock = _bind(listen) if listen is not None else None  # a busy port fails before any store is opened
    try:
        await _serve(families, allow, plugin, listen, sock, TokenFile(token_file), on_ready)
    finally:
        if sock is not None:
            sock.close()


async def _serve(
    families: Sequence[str],
    allow: Sequence[str],
    plugin: _HolderPlugin,
    listen: Listen | None,
    sock: socket.socket | None,
    tokens: TokenFile,
    on_ready: Callable[[str], None] | None,
) -> None:
    from kernel.kernel import open_kernel

    async with open_kernel() as kernel:
        kernel.plugins.register(plugin, name="aios-mcp-serve")
        pid = await kernel.spawn("mcp-serve", "serve MCP clients")
        server = export_server(kernel, lambda: kernel.process(pid), families, allow)
        exposed = [t.name for t in export_tools(families, allow)]
        log.info("aios mcp serve: pid %d exposes %s", pid, ", ".join(exposed) or "no tools")
        if listen is not None and sock is not None:
            await _serve_http(server, listen, sock, tokens, on_ready)
        else:
            await server.run_stdio_async()


def _bind(listen: Listen) -> socket.socket:
    """Bind before serving, so a busy port is one clear error rather than uvicorn's exit."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise AiosError(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}") from None
    return sock


async def _serve_http(
    server: MCPServer,
    listen: Listen,
    sock: socket.socket,
    tokens: TokenFile,
    on_ready: Callable[[str], None] | None,
) -> None:
    import uvicorn

    app = BearerAuth(server.streamable_http_app(host=listen.host), tokens)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    web = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(web.serve, [sock])
        while not web.started and not web.should_exit:
            await anyio.sleep(0.05)
        if web.started and on_ready is not None:
            on_ready(listen.url)
