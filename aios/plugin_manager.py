"""Finds plugins and the agents and tools they register.

Sources, in order: the built-in plugins shipped in ``plugins/``, installed distributions exposing the
``aios`` entry-point group (``AIOS_LOAD_PLUGINS=a,b`` loads only those entry points or distributions, and an
empty value none), and one-file plugins (``*.py``) in the config dir's ``plugins/`` folder. A plugin that
fails to import, whose agent has an invalid manifest, or whose ``register_tools`` raises or returns something
that is not a tool, is recorded by name (``failures``) and logged; it never stops the others.

Third-party agents (from an entry point or a one-file plugin, not the built-ins) run only once the user approved
what their manifest declares (``approval_subject``): the kernel asks on their first run and again whenever the
declared capabilities change; an "always" answer, or ``aios plugins approve NAME``, is recorded in config.toml
as ``[plugins.approved.NAME]`` (``record_approval``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from aios import hookspecs, paths
from aios.api import PRIORITIES, Agent, Capabilities, Manifest, PluginTool
from aios.config import PluginApproval, load_config, parse_config
from aios.errors import ConfigError, UnknownAgentError

__all__ = [
    "BUILTIN_PLUGINS",
    "ApprovalSubject",
    "PluginFailure",
    "PluginManager",
    "PluginSource",
    "agent_problem",
    "approved",
    "capabilities_summary",
    "record_approval",
    "tool_server_name",
]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS = (
    "plugins.chat",
    "plugins.files",
    "plugins.planner",
    "plugins.plan_runner",
    "plugins.summarizer",
    "plugins.supervisor",
    "plugins.worker",
)


_AGENT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class PluginFailure:
    source: str
    error: str


@dataclass(frozen=True)
class PluginSource:
    """Where a registered plugin came from (what ``aios plugins list`` shows)."""

    kind: str  # "builtin", "entry point", "file" or "registered"
    module: str
    distribution: str = ""
    version: str = ""


#: Where a plugin comes from that must be approved before its agents run.
THIRD_PARTY_KINDS = ("entry point", "file")


@dataclass(frozen=True)
class ApprovalSubject:
    """A third-party agent as the user approves it: what it declares, and a digest of that."""

    agent: str
    plugin: str
    version: str
    capabilities: dict[str, Any]
    digest: str

    def describe(self) -> str:
        """One line for the approval prompt: the plugin, its version, and every declared capability."""
        declared = "; ".join(f"{k}={_shown(v)}" for k, v in self.capabilities.items()) or "nothing beyond defaults"
        version = f" {self.version}" if self.version else ""
        return f"first run of plugin {self.plugin!r}{version}: agent {self.agent!r} declares {declared}"


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


class PluginManager:
    def __init__(self, *, load_entry_points: bool = True, plugins_dir: Path | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._agents: dict[str, type[Agent]] | None = None
        self._agent_plugin: dict[str, str] = {}
        self._tools: dict[str, list[PluginTool]] | None = None
        self.sources: dict[str, PluginSource] = {}
        for name in BUILTIN_PLUGINS:
            self._register_module(name, importlib.import_module, name, PluginSource("builtin", name))
        if load_entry_points:
            self._load_entry_points()
        folder = plugins_dir if plugins_dir is not None else paths.plugins_dir()
        if folder.is_dir():
            for file in sorted(folder.glob("*.py")):
                self._register_module(str(file), _load_file, file, PluginSource("file", str(file)))

    def _load_entry_points(self) -> None:
        """Each entry point of the ``aios`` group on its own: one that fails to import is reported by name."""
        wanted = os.environ.get("AIOS_LOAD_PLUGINS")
        only = None if wanted is None else {w.strip() for w in wanted.split(",") if w.strip()}
        try:
            found = list(importlib.metadata.entry_points(group=hookspecs.PROJECT))
        except Exception as exc:  # broken installed metadata must not stop aios
            self._fail("entry points", exc)
            return
        for ep in found:
            dist = ep.dist.name if ep.dist is not None else ""
            if only is not None and ep.name not in only and dist not in only:
                continue
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            version = ep.dist.version if ep.dist is not None else ""
            source = PluginSource("entry point", ep.value, dist, version)
            self._register_module(ep.name, lambda e: e.load(), ep, source)

    def _fail(self, source: str, exc: BaseException) -> None:
        log.warning("plugin %s failed to load: %s", source, exc)
        self.failures.append(PluginFailure(source, f"{type(exc).__name__}: {exc}"))

    def _register_module(self, source: str, loader, arg, where: PluginSource) -> None:  # type: ignore[no-untyped-def]
        try:
            module = loader(arg)
            self.pm.register(module, name=source)
        except Exception as exc:
            self._fail(source, exc)
        else:
            self.sources[source] = where

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object directly (used by tests and embedding applications)."""
        registered = self.pm.register(plugin, name=name)
        if registered is not None:
            self.sources[registered] = PluginSource("registered", getattr(plugin, "__name__", type(plugin).__name__))
        self._agents = None
        self._tools = None

    def plugin_names(self) -> list[str]:
        return sorted(name for name, _ in self.pm.list_name_plugin())

    def agents(self) -> dict[str, type[Agent]]:
        """Every valid agent by name. Each plugin's ``register_agents`` is called on its own: one that raises, or
        an agent with an invalid manifest or a taken name, is recorded under the plugin's name and skipped."""
        if self._agents is None:
            found: dict[str, type[Agent]] = {}
            owner: dict[str, str] = {}
            # get_hookimpls() lists plugins in registration order: built-ins first, so they keep their names.
            for impl in self.pm.hook.register_agents.get_hookimpls():
                source = impl.plugin_name
                try:
                    returned = impl.function()
                    if not isinstance(returned, list | tuple):
                        raise TypeError(f"register_agents must return a list, not {type(returned).__name__}")
                except Exception as exc:
                    self._fail(f"{source} (register_agents)", exc)
                    continue
                for cls in returned:
                    problem = agent_problem(cls)
                    if problem is None and cls.manifest.name in found and found[cls.manifest.name] is not cls:
                        problem = f"agent name '{cls.manifest.name}' is already taken by {owner[cls.manifest.name]}"
                    if problem is not None:
                        self._fail(f"{source} (agent {getattr(cls, '__name__', cls)!r})", ValueError(problem))
                        continue
                    found[cls.manifest.name], owner[cls.manifest.name] = cls, source
            self._agents, self._agent_plugin = found, owner
        return self._agents

    def describe(self) -> list[dict[str, Any]]:
        """Every plugin: where it came from, the agents and tools it provides, and what failed in it."""
        agents, tools = self.agents(), self.tools()
        try:
            approvals = load_config().plugins.approved
        except ConfigError:
            approvals = {}
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            where = self.sources.get(name, PluginSource("registered", name))
            server = tool_server_name(name, plugin)
            rows.append(
                {
                    "name": name,
                    "kind": where.kind,
                    "module": where.module,
                    "distribution": where.distribution,
                    "version": where.version,
                    "agents": [
                        {
                            "name": agent,
                            "description": cls.manifest.description,
                            "capabilities": capabilities_summary(cls.manifest.capabilities),
                            "approval": self._approval_state(agent, approvals),
                        }
                        for agent, cls in sorted(agents.items())
                        if self._agent_plugin.get(agent) == name
                    ],
                    "tools": [f"{server}.{t.name}" for t in tools.get(server, [])],
                    "errors": [f.error for f in self.failures if _failure_of(f.source) == name],
                }
            )
        for failure in self.failures:  # plugins that never registered (failed to import)
            if not any(r["name"] == _failure_of(failure.source) for r in rows):
                rows.append(
                    {
                        "name": _failure_of(failure.source),
                        "kind": "broken",
                        "module": "",
                        "distribution": "",
                        "version": "",
                        "agents": [],
                        "tools": [],
                        "errors": [failure.error],
                    }
                )
        return sorted(rows, key=lambda r: str(r["name"]))

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

    def _approval_state(self, agent: str, approvals: dict[str, PluginApproval]) -> str:
        """``built-in`` (never asks), ``approved``, ``changed`` (approved, but it now declares something else:
        the next run asks) or ``not approved`` (the first run asks)."""
        subject = self.approval_subject(agent)
        if subject is None:
            return "built-in"
        record = approvals.get(agent)
        if record is None:
            return "not approved"
        return "approved" if record.digest == subject.digest else "changed"

    def plugin_of(self, agent: str) -> str | None:
        """The name of the plugin that registered ``agent`` (None: unknown)."""
        self.agents()
        return self._agent_plugin.get(agent)

    def approval_subject(self, agent: str) -> ApprovalSubject | None:
        """What the user must approve before ``agent`` runs; None for built-in (and directly registered) ones."""
        cls = self.agent(agent)
        plugin = self._agent_plugin.get(agent, "")
        where = self.sources.get(plugin)
        if where is None or where.kind not in THIRD_PARTY_KINDS:
            return None
        declared = capabilities_summary(cls.manifest.capabilities)
        body = json.dumps({"agent": agent, "capabilities": declared}, sort_keys=True, default=list)
        name = where.distribution or tool_server_name(plugin)
        return ApprovalSubject(agent, name, where.version, declared, hashlib.sha256(body.encode()).hexdigest())

    def approve(self, name: str, path: Path | None = None) -> list[ApprovalSubject]:
        """Record the user's approval of third-party agent ``name``, or of every agent of plugin ``name``
        (`aios plugins approve`); what was approved (empty: nothing there needs approval)."""
        agents = self.agents()
        names = [name] if name in agents else [a for a in sorted(agents) if name in self._plugin_names(a)]
        if not names:
            known = ", ".join(sorted(a for a in agents if self.approval_subject(a) is not None)) or "none"
            raise UnknownAgentError(
                f"no agent or plugin named {name!r} (third-party agents: {known})", "see `aios plugins list`"
            )
        subjects = [s for s in map(self.approval_subject, names) if s is not None]
        for subject in subjects:
            record_approval(subject, path)
        return subjects

    def _plugin_names(self, agent: str) -> set[str]:
        plugin = self._agent_plugin.get(agent, "")
        where = self.sources.get(plugin)
        return {plugin, tool_server_name(plugin), where.distribution if where else ""} - {""}

    def agent(self, name: str) -> type[Agent]:
        agents = self.agents()
        if name not in agents:
            known = ", ".join(sorted(agents)) or "none"
            raise UnknownAgentError(f"unknown agent '{name}' (available: {known})", "see `aios agents`")
        return agents[name]


def approved(subject: ApprovalSubject, path: Path | None = None) -> bool:
    """Whether config.toml records an approval of exactly what ``subject`` declares (blocking: reads it)."""
    record = load_config(path).plugins.approved.get(subject.agent)
    return record is not None and record.digest == subject.digest


def record_approval(subject: ApprovalSubject, path: Path | None = None) -> PluginApproval:
    """Write ``[plugins.approved.<agent>]`` into config.toml (replacing an earlier record of that agent), keeping
    the rest of the file as it is; the result is validated before it replaces the file."""
    path = path or paths.config_path()
    record = PluginApproval(plugin=subject.plugin, version=subject.version, digest=subject.digest)
    record.approved_at = round(time.time(), 3)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}", "check its permissions") from None
    headers = {f"[plugins.approved.{subject.agent}]", f'[plugins.approved."{subject.agent}"]'}
    kept: list[str] = []
    skipping = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped.replace(" ", "") in headers
        if not skipping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    kept += [
        "",
        f'[plugins.approved."{subject.agent}"]',
        *(f"{k} = {json.dumps(v)}" for k, v in record.model_dump().items()),
    ]
    text = "\n".join(kept).lstrip("\n") + "\n"
    import tomllib

    try:
        parse_config(tomllib.loads(text), str(path))
    except (tomllib.TOMLDecodeError, ConfigError) as exc:
        raise ConfigError(f"{path}: cannot record the approval of {subject.agent!r}: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("approved plugin agent %s (%s %s)", subject.agent, subject.plugin, subject.version)
    return record


def _failure_of(source: str) -> str:
    return source.split(" (", 1)[0]


def agent_problem(cls: Any) -> str | None:
    """What is wrong with an agent class a plugin registered, or None."""
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        return f"{cls!r} is not a subclass of aios.Agent"
    manifest = getattr(cls, "manifest", None)
    if not isinstance(manifest, Manifest):
        return "agent class has no Manifest in `manifest`"
    if not isinstance(manifest.name, str) or not _AGENT_NAME.match(manifest.name):
        return f"agent name {manifest.name!r} must match {_AGENT_NAME.pattern}"
    if manifest.priority not in PRIORITIES:
        return f"agent {manifest.name}: priority {manifest.priority!r} is not one of {', '.join(PRIORITIES)}"
    if not isinstance(manifest.capabilities, Capabilities):
        return f"agent {manifest.name}: capabilities must be an aios.Capabilities"
    if not inspect.iscoroutinefunction(cls.run) or cls.run is Agent.run:
        return f"agent {manifest.name}: run must be an `async def run(self, ctx, goal)`"
    return None


def capabilities_summary(caps: Capabilities) -> dict[str, Any]:
    """The capabilities an agent declares, leaving out what is empty or default (what approval shows)."""
    default = Capabilities()
    return {k: v for k, v in vars(caps).items() if v != getattr(default, k)}


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
