"""The MCP host: one owner task per server, one catalog, and the single call path every tool call takes.

``McpHost`` is an async context manager. Servers start at boot (``autostart``, and every in-process built-in)
or on first use. ``call("server.tool", args)`` validates the arguments against the tool's input schema,
serialises destructive calls to the same server, and returns a ``ToolResult`` value whatever happens.
The kernel runs one as its tool service (``kernel.svc_tools.open_service``, ``kernel.services["mcp"]``).
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Mapping
from typing import Any

import anyio
import jsonschema

from tools.catalog import Catalog, PromptEntry, ResourceEntry, ToolEntry
from tools.config import Redactor, ServerConfig
from tools.owner import ElicitHandler, ServerOwner
from tools.results import ProgressFn, ToolResult

__all__ = ["McpHost"]

log = logging.getLogger(__name__)


def _schema_error(exc: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in exc.absolute_path) or "arguments"
    return f"{where}: {exc.message}"[:300]


class McpHost:
    def __init__(
        self,
        servers: Mapping[str, ServerConfig] | None = None,
        *,
        inproc: Mapping[str, Any] | None = None,
        connect_timeout: float = 30.0,
        health_interval: float = 15.0,
        elicit: ElicitHandler | None = None,
    ) -> None:
        self.catalog = Catalog()
        self.redactor = Redactor()
        self.owners: dict[str, ServerOwner] = {}
        self._pending: list[tuple[ServerConfig, Any]] = [
            (cfg, None) for cfg in (servers or {}).values() if not cfg.disabled
        ]
        for name, server in (inproc or {}).items():
            if servers and name in servers:
                log.info("MCP server %s from mcp.json replaces the built-in one", name)
                continue
            self._pending.append((ServerConfig(name=name, command="(in-process)"), server))
        self.connect_timeout = connect_timeout
        self.health_interval = health_interval
        self._tg: anyio.abc.TaskGroup | None = None
        self._locks: dict[str, anyio.Lock] = {}
        self._validators: dict[str, Any] = {}
        #: Who answers servers' elicitation requests (the kernel routes them to the approval broker); None:
        #: the capability is not advertised and servers cannot ask. Read when each server's session starts.
        self.elicit = elicit

    async def __aenter__(self) -> McpHost:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        for cfg, server in self._pending:
            await self.add_server(cfg, inproc=server)
        self._pending = []
        return self

    async def __aexit__(self, *exc: Any) -> None:
        for owner in self.owners.values():
            owner.stop()
        assert self._tg is not None
        tg, self._tg = self._tg, None
        # Each owner leaves its session in its own task; the SDK bounds every process-tree shutdown.
        await tg.__aexit__(*exc)

    # -- servers ----------------------------------------------------------------------------------

    async def add_server(self, config: ServerConfig, *, inproc: Any = None) -> ServerOwner:
        if self._tg is None:
            raise RuntimeError("McpHost is not running")
        if config.name in self.owners:
            raise ValueError(f"MCP server {config.name!r} is already configured")
        self.redactor.add(config.secrets())
        owner = ServerOwner(
            config,
            redactor=self.redactor,
            inproc=inproc,
            connect_timeout=self.connect_timeout,
            health_interval=self.health_interval,
            elicit=self.elicit,
        )
        owner.on_catalog_changed = self._refresh
        self.owners[config.name] = owner
        self._locks[config.name] = anyio.Lock()
        await self._tg.start(owner.run)
        return owner

    async def remove_server(self, name: str) -> None:
        owner = self.owners.pop(name, None)
        if owner is not None:
            owner.stop()
            self.catalog.drop_server(name)

    def _refresh(self, owner: ServerOwner) -> None:
        cfg = owner.config
        tools = [ToolEntry.from_mcp(owner.name, t, egress=cfg.egress) for t in owner.tools if cfg.tool_allowed(t.name)]
        prompts = [
            PromptEntry(
                f"{owner.name}.{p.name}", owner.name, p.description or "", tuple(a.name for a in p.arguments or ())
            )
            for p in owner.prompts
        ]
        resources = [
            ResourceEntry(str(r.uri), owner.name, r.name, r.description or "", r.mime_type) for r in owner.resources
        ]
        self.catalog.replace_server(owner.name, tools, prompts, resources)
        self._validators = {k: v for k, v in self._validators.items() if not k.startswith(owner.name + ".")}

    async def start_all(self, timeout: float | None = None, *, skip_failed: bool = False) -> None:
        """Start every server (concurrently) and wait until each is ready or has failed.

        ``skip_failed`` leaves servers that already failed alone (a catalog listing should not wait on them).
        """
        async with anyio.create_task_group() as tg:
            for owner in self.owners.values():
                if owner.state == "ready" or (skip_failed and owner.state == "failed"):
                    continue
                tg.start_soon(owner.wait_ready, timeout)

    def servers(self) -> list[dict[str, Any]]:
        return [owner.info() for owner in self.owners.values()]

    # -- calls ------------------------------------------------------------------------------------

    async def resolve(self, name: str) -> ToolEntry | ToolResult:
        """The catalog entry for ``server.tool`` (starting its server if needed), or an error value."""
        server, dot, tool = name.partition(".")
        owner = self.owners.get(server)
        if not dot or owner is None:
            close = difflib.get_close_matches(name, list(self.catalog.tools), n=3)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else f"; servers: {', '.join(sorted(self.owners)) or 'none'}"
            )
            return ToolResult.error("unknown_tool", f"unknown tool {name!r} (tools are named server.tool){hint}")
        if owner.state != "ready":
            if await owner.wait_ready() is None:
                return ToolResult.error("unavailable", f"server {server} is unavailable: {owner.error}")
        entry = self.catalog.get(name)
        if entry is None:
            if any(t.name == tool for t in owner.tools):
                return ToolResult.error("denied", f"tool {name} is excluded by mcp.json (allowed_tools/denied_tools)")
            close = difflib.get_close_matches(name, [t for t in self.catalog.tools if t.startswith(server + ".")], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            return ToolResult.error("unknown_tool", f"server {server} has no tool {tool!r}{hint}")
        return entry

    def validate(self, entry: ToolEntry, arguments: Any) -> str | None:
        """A one-line reason the arguments do not fit the tool's input schema, or None."""
        if not isinstance(arguments, dict):
            return "arguments must be a JSON object"
        validator: Any = self._validators.get(entry.name)
        if validator is None:
            try:
                cls = jsonschema.validators.validator_for(entry.input_schema, default=jsonschema.Draft202012Validator)
                validator = cls(entry.input_schema)
            except Exception:  # a server's broken schema: let the server judge the arguments
                validator = False
            self._validators[entry.name] = validator
        if validator is False:
            return None
        error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        return None if error is None else _schema_error(error)

    async def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        hard_cap: float | None = None,
        progress: ProgressFn | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ToolResult:
        started = time.perf_counter()
        arguments = {} if arguments is None else arguments
        found = await self.resolve(name)
        if isinstance(found, ToolResult):
            found.elapsed_s = time.perf_counter() - started
            return found
        entry = found
        problem = self.validate(entry, arguments)
        if problem is not None:
            return ToolResult.error(
                "invalid_args", f"{name}: invalid arguments: {problem}", time.perf_counter() - started
            )
        owner = self.owners[entry.server]
        if entry.destructive:
            # Side effects on one server happen one at a time, in the order they were asked for.
            async with self._locks[entry.server]:
                result = await owner.call(
                    entry.tool, arguments, timeout=timeout, hard_cap=hard_cap, progress=progress, meta=meta
                )
        else:
            result = await owner.call(
                entry.tool, arguments, timeout=timeout, hard_cap=hard_cap, progress=progress, meta=meta
            )
        result.elapsed_s = time.perf_counter() - started
        return result
