"""Finds plugins and the agents they register.

Sources, in order: the built-in plugins shipped in ``plugins/``, installed distributions exposing the
``aios`` entry-point group, and one-file plugins (``*.py``) in the config dir's ``plugins/`` folder. A plugin
that fails to load is recorded (``failures``) and logged; it never stops the others.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pluggy

from aios import hookspecs, paths
from aios.api import Agent, Manifest
from aios.errors import UnknownAgentError

__all__ = ["BUILTIN_PLUGINS", "PluginFailure", "PluginManager"]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = ("plugins.chat", "plugins.files", "plugins.planner")


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

    def agent(self, name: str) -> type[Agent]:
        agents = self.agents()
        if name not in agents:
            known = ", ".join(sorted(agents)) or "none"
            raise UnknownAgentError(f"unknown agent '{name}' (available: {known})", "see `aios agents`")
        return agents[name]


def _load_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"aios_user_plugin_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
