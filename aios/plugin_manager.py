"""Finds plugins and the agents and tools they register.

Sources, in order: the built-in plugins shipped in ``plugins/``, installed distributions exposing the
``aios`` entry-point group, and one-file plugins (``*.py``) in the config dir's ``plugins/`` folder. A plugin
that fails to load, or whose ``register_tools`` raises or returns something that is not a tool, is recorded
(``failures``) and logged; it never stops the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from aios import hookspecs, paths
from aios.api import Agent, Manifest, PluginTool
from aios.errors import UnknownAgentError

__all__ = ["BUILTIN_PLUGINS", "PluginFailure", "PluginManager", "tool_server_name"]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = ("plugins.chat", "plugins.files", "plugins.planner", "plugins.plan_runner")


@dataclass(frozen=True)
class PluginFailure:
    source: str
    error: str


class PluginManager:
    def __init__(self, *, load_entry_points: bool = True, plugins_dir: Path | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._agents: dict[str, type[Agent]] | None = None
        self._tools: dict[str, list[PluginTool]] | None = None
        for name in BUILTIN_PLUGINS:
            self._register_module(name, importlib.import_module, name)
        if load_entry_points:
            try:
                self.pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            except Exception as exc:  # a broken third-party distribution must not stop aios
                self._fail("entry points", exc)
        folder = plugins_dir if plugins_dir is not None else paths.plugins_dir()
        if folder.is_dir():
            for file in sorted(folder.glob("*.py")):
                self._register_module(str(file), _load_file, file)

    def _fail(self, source: str, exc: BaseException) -> None:
        log.warning("plugin %s failed to load: %s", source, exc)
        self.failures.append(PluginFailure(source, f"{type(exc).__name__}: {exc}"))

    def _register_module(self, source: str, loader, arg) -> None:  # type: ignore[no-untyped-def]
        try:
            module = loader(arg)
            self.pm.register(module, name=source)
        except Exception as exc:
            self._fail(source, exc)

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object directly (used by tests and embedding applications)."""
        self.pm.register(plugin, name=name)
        self._agents = None
        self._tools = None

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def agents(self) -> dict[str, type[Agent]]:
        if self._agents is None:
            found: dict[str, type[Agent]] = {}
            # pluggy calls the most recently registered plugin first; built-ins registered first must win.
            for result in reversed(self.pm.hook.register_agents()):
                for cls in result or ():
                    manifest = getattr(cls, "manifest", None)
                    if not isinstance(manifest, Manifest):
                        self._fail(repr(cls), TypeError("agent class has no Manifest in `manifest`"))
                        continue
                    if manifest.name in found and found[manifest.name] is not cls:
                        self._fail(repr(cls), ValueError(f"agent name '{manifest.name}' is already taken"))
                        continue
                    found[manifest.name] = cls
            self._agents = found
        return self._agents

    def tools(self) -> dict[str, list[PluginTool]]:
        """Each plugin's tools under the name of the MCP server that serves them (see ``tool_server_name``).

        Every plugin's ``register_tools`` is called on its own, so one that raises, returns something that is
        not a tool, or has a parameter type with no JSON schema is recorded and skipped, alone.
        """
        if self._tools is None:
            found: dict[str, list[PluginTool]] = {}
            owner: dict[str, str] = {}
            # get_hookimpls() lists plugins in registration order: built-ins first, so they keep their names.
            for impl in self.pm.hook.register_tools.get_hookimpls():
                source = impl.plugin_name
                server = tool_server_name(source, impl.plugin)
                if server in owner:
                    self._fail(source, ValueError(f"tool server name {server!r} is already taken by {owner[server]}"))
                    continue
                try:
                    returned = impl.function()
                    if not isinstance(returned, list | tuple):
                        raise TypeError(f"register_tools must return a list, not {type(returned).__name__}")
                except Exception as exc:
                    self._fail(f"{source} (register_tools)", exc)
                    continue
                tools: list[PluginTool] = []
                for item in returned:
                    try:
                        spec = PluginTool.of(item)
                        spec.input_schema  # noqa: B018 -- a type with no JSON schema fails here, at boot
                        if any(t.name == spec.name for t in tools):
                            raise ValueError(f"tool name {spec.name!r} is used twice")
                    except Exception as exc:
                        self._fail(f"{source} (tool {getattr(item, '__name__', item)!r})", exc)
                        continue
                    tools.append(spec)
                if tools:
                    found[server], owner[server] = tools, source
            self._tools = found
        return self._tools

    def agent(self, name: str) -> type[Agent]:
        agents = self.agents()
        if name not in agents:
            known = ", ".join(sorted(agents)) or "none"
            raise UnknownAgentError(f"unknown agent '{name}' (available: {known})", "see `aios agents`")
        return agents[name]


def tool_server_name(plugin_name: str, plugin: Any = None) -> str:
    """The MCP server name for a plugin's tools: ``plugins.notes`` -> ``notes``, ``.../notes.py`` -> ``notes``."""
    name = plugin_name
    if name.endswith(".py"):
        name = Path(name).stem
    elif "." in name:
        name = name.rsplit(".", 1)[1]
    if not name or name.isdigit():  # registered without a name: pluggy used id()
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        name = name.rsplit(".", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"aios_user_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
