"""pluggy hook specifications: the only ways a plugin (built-in or third-party) extends aios."""

from __future__ import annotations

from typing import Any

import pluggy

from aios.api import Agent

__all__ = ["PROJECT", "hookimpl", "hookspec", "register_agents", "register_commands", "register_tools"]

PROJECT = "aios"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_agents() -> list[type[Agent]]:  # type: ignore[empty-body]
    """Return agent classes this plugin provides."""


@hookspec
def register_tools() -> list[Any]:  # type: ignore[empty-body]
    """Return the tools this plugin provides: typed functions (``@aios.tool`` sets name and hints) or
    ``PluginTool`` objects. The kernel serves them as one in-process MCP server named after the plugin, so a
    tool ``f`` of plugin ``notes`` is ``notes.f`` in the catalog, under the same access control as any tool."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add click commands to the ``aios`` command group ``cli``."""
