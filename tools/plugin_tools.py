"""Plugins' tools as in-process MCP servers: one per plugin, named after it, so its tools are ``PLUGIN.tool``.

A plugin's ``register_tools`` returns typed functions (``aios.tool``); the plugin manager describes them
(``PluginTool``: name, description, input schema from the signature, side-effect hints). Here each plugin's
tools become one low-level MCP server reached through the SDK's memory transport, so they take the path
every tool takes: catalog, ``tool.call`` access checks (``tools`` globs), argument validation against the
schema, timeouts, audit. Failures are values: bad arguments and exceptions come back as error results.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import anyio
from mcp.server import Server
from mcp_types import CallToolResult, ListToolsResult, TextContent, Tool, ToolAnnotations

from aios.api import PluginTool

__all__ = ["PluginToolSource", "plugin_server", "plugin_servers"]

log = logging.getLogger(__name__)


class PluginToolSource(Protocol):
    """What provides plugins' tools: ``aios.plugin_manager.PluginManager``."""

    def tools(self) -> Mapping[str, Sequence[PluginTool]]: ...


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text[:2000])], is_error=True)


def _result(value: Any) -> CallToolResult:
    from pydantic_core import to_jsonable_python

    if isinstance(value, str):
        return CallToolResult(content=[TextContent(type="text", text=value)])
    plain = to_jsonable_python(value, fallback=str)
    text = json.dumps(plain, ensure_ascii=False)
    # Structured content is an object: anything else is wrapped as {"result": ...}, which plans unwrap.
    structured = plain if isinstance(plain, dict) else {"result": plain}
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def plugin_server(name: str, tools: Sequence[PluginTool]) -> Server[Any]:
    """A low-level MCP server named ``name`` serving ``tools``."""
    by_name = {t.name: t for t in tools}
    listed = [
        Tool(
            name=t.name,
            description=t.description or None,
            input_schema=t.input_schema,
            annotations=ToolAnnotations(
                read_only_hint=t.read_only,
                destructive_hint=t.destructive,
                idempotent_hint=t.idempotent,
                open_world_hint=t.open_world,
            ),
        )
        for t in tools
    ]

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=listed)

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        spec = by_name.get(params.name)
        if spec is None:
            return _error(f"{name} has no tool {params.name!r}")
        try:
            kwargs = spec.arguments(dict(params.arguments or {}))
        except ValueError as exc:
            return _error(f"{name}.{spec.name}: invalid arguments: {exc}")
        try:
            if spec.is_async:
                value = await spec.fn(**kwargs)
            else:
                # A plain function may block: a worker thread keeps the event loop free. On a timeout the
                # call is abandoned (a thread cannot be interrupted) and finishes on its own.
                value = await anyio.to_thread.run_sync(functools.partial(spec.fn, **kwargs), abandon_on_cancel=True)
        except Exception as exc:
            log.info("tool %s.%s raised", name, spec.name, exc_info=True)
            return _error(f"{type(exc).__name__}: {exc}")
        try:
            return _result(value)
        except Exception as exc:
            log.warning("tool %s.%s returned a value that is not JSON: %s", name, spec.name, exc)
            return _error(f"{name}.{spec.name} returned a value that is not JSON: {type(value).__name__}")

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def plugin_servers(source: PluginToolSource | None, *, reserved: Collection[str] = ()) -> dict[str, Server[Any]]:
    """One server per plugin that registered tools. A name in ``reserved`` (a built-in server's) is refused."""
    if source is None:
        return {}
    try:
        found = source.tools()
    except Exception:  # the plugin manager isolates each plugin; this is a bug, but not one to stop the kernel
        log.exception("plugin tools not loaded")
        return {}
    servers: dict[str, Server[Any]] = {}
    for name, tools in found.items():
        if name in reserved:
            log.error("plugin tools %s left out: the name %r belongs to a built-in server", name, name)
            continue
        try:
            servers[name] = plugin_server(name, tools)
        except Exception as exc:
            log.error("plugin tools %s left out: %s", name, exc)
    return servers
