"""One long-lived task per MCP server: it enters the SDK session (so its cancel scopes exit in the same task),
keeps the tool listing, pings for health, reconnects with backoff and shuts the process tree down cleanly.

Calls are made from the caller's own task on the live session (the SDK's dispatcher multiplexes them), each
inside two scopes: an inactivity deadline that every progress notification pushes forward, and a hard cap.
Leaving either scope, or the caller being cancelled, makes the SDK send ``notifications/cancelled``.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Literal

import anyio
from anyio.abc import TaskStatus
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_REQUEST, ElicitResult, ErrorData
from pydantic import ValidationError

from aios import paths
from tools.config import Redactor, ServerConfig
from tools.results import ProgressFn, ToolResult, content_text

__all__ = ["ElicitHandler", "ServerOwner", "ServerState"]

log = logging.getLogger(__name__)

ServerState = Literal["stopped", "starting", "ready", "reconnecting", "failed"]
_PAGE_CAP = 100
_ELICIT_ACTIONS = ("accept", "decline", "cancel")

#: Answers a server's form elicitation: ``(server, message, requested_schema, caller_meta)`` -> ``(action,
#: content)``; action is accept, decline or cancel; ``caller_meta`` is the ``_meta`` of the one call in flight
#: on that server (None when there are none or several, so the asker cannot be told apart).
ElicitHandler = Callable[
    [str, str, dict[str, Any], dict[str, Any] | None], Awaitable[tuple[str, dict[str, Any] | None]]
]


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaf_errors(sub)]
    return [exc]


def describe_error(exc: BaseException) -> str:
    leaves = [e for e in _leaf_errors(exc) if not isinstance(e, anyio.get_cancelled_exc_class())] or [exc]
    return "; ".join(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__ for e in leaves[:3])


class ServerOwner:
    """Owns one server's session. ``run`` is the owner task; everything else is called from other tasks."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        redactor: Redactor | None = None,
        inproc: Any = None,
        connect_timeout: float = 30.0,
        health_interval: float = 15.0,
        max_restarts: int = 5,
        elicit: ElicitHandler | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.inproc = inproc
        self.redactor = redactor or Redactor(config.secrets())
        self.connect_timeout = connect_timeout
        self.health_interval = health_interval
        self.max_restarts = max_restarts
        self.state: ServerState = "stopped"
        self.error: str | None = None
        self.tools: list[Any] = []
        self.prompts: list[Any] = []
        self.resources: list[Any] = []
        self.warnings: list[str] = []
        self.restarts = 0
        self.protocol_version: str | None = None
        self.on_catalog_changed: Any = None
        self._client: Client | None = None
        self._wanted = anyio.Event()
        self._stop = anyio.Event()
        self._broken = anyio.Event()
        self._changed = anyio.Event()
        self._failed_at = 0.0
        self._pump: threading.Thread | None = None
        self.elicit = elicit
        #: Calls in flight: their inactivity scope, its length and their ``_meta`` (for elicitation).
        self._calls: dict[int, tuple[anyio.CancelScope, float, dict[str, Any] | None]] = {}
        self._eliciting = 0

    # -- state ------------------------------------------------------------------------------------

    def _set(self, state: ServerState, error: str | None = None) -> None:
        self.state = state
        self.error = self.redactor.scrub(error) if error else None
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        if error:
            log.warning("MCP server %s: %s", self.name, self.error)

    def request_start(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        self._stop.set()
        self._broken.set()
        self._wanted.set()  # wake an owner that never started, so it can exit

    def mark_broken(self) -> None:
        """A call saw the connection die: later calls wait for the reconnect instead of using it."""
        self._broken.set()
        if self.state == "ready":
            self._client = None
            self._set("reconnecting", "the server closed the connection")

    def info(self) -> dict[str, Any]:
        return {
            **self.config.redacted(),
            "transport": "memory" if self.inproc is not None else self.config.transport,
            "state": self.state,
            "error": self.error,
            "tools": len(self.tools),
            "prompts": len(self.prompts),
            "resources": len(self.resources),
            "restarts": self.restarts,
            "warnings": list(self.warnings),
        }

    # -- the owner task ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.config.autostart or self.inproc is not None:
            self._wanted.set()
        failures = 0
        try:
            while not self._stop.is_set():
                await self._wanted.wait()
                if self._stop.is_set():
                    break
                was_ready = await self._session_once()
                if self._stop.is_set():
                    break
                failures = 0 if was_ready else failures + 1
                if failures >= self.max_restarts:
                    # Give up until someone asks again (the next call).
                    self._wanted = anyio.Event()
                    failures = 0
                    continue
                self.restarts += 1
                if was_ready:
                    self._set("reconnecting", self.error or "the server closed the connection")
                with anyio.move_on_after(min(30.0, 0.25 * 2**failures)):
                    await self._stop.wait()
        finally:
            self._client = None
            self._set("stopped", None)

    def _errlog(self, stack: AsyncExitStack) -> Any:
        """The server's stderr: a pipe whose lines a thread writes to the log file with secrets scrubbed."""
        folder = paths.logs_dir() / "mcp"
        folder.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        log_file = open(folder / f"{self.name}.stderr.log", "w", encoding="utf-8")  # the pump thread closes it

        def pump() -> None:
            with os.fdopen(read_fd, encoding="utf-8", errors="replace") as pipe, log_file:
                for line in pipe:
                    log_file.write(self.redactor.scrub(line))
                    log_file.flush()

        self._pump = threading.Thread(target=pump, name=f"mcp-{self.name}-stderr", daemon=True)
        self._pump.start()
        return stack.enter_context(os.fdopen(write_fd, "w"))

    def _stderr_tail(self) -> str:
        path = paths.logs_dir() / "mcp" / f"{self.name}.stderr.log"
        try:
            lines = path.read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            return ""
        return self.redactor.scrub(" | ".join(line.strip() for line in lines))[-400:]

    async def _on_elicit(self, context: Any, params: Any) -> ElicitResult | ErrorData:
        """A server's ``elicitation/create`` during a call: ask the owner's handler (the user, in the kernel).

        The calls in flight on this server do not time out for inactivity while the user answers."""
        if self.elicit is None:
            return ErrorData(code=INVALID_REQUEST, message="Elicitation not supported")
        if getattr(params, "mode", "form") != "form":
            return ErrorData(code=INVALID_REQUEST, message="only form elicitation is supported")
        calls = list(self._calls.values())
        meta = calls[0][2] if len(calls) == 1 else None
        self._eliciting += 1
        for scope, _idle, _meta in calls:
            scope.deadline = math.inf
        try:
            action, content = await self.elicit(self.name, params.message, dict(params.requested_schema), meta)
        except Exception as exc:
            log.warning("MCP server %s: elicitation failed: %s", self.name, describe_error(exc))
            return ErrorData(code=INTERNAL_ERROR, message=f"elicitation failed: {describe_error(exc)}"[:300])
        finally:
            self._eliciting -= 1
            if not self._eliciting:
                for scope, idle_s, _meta in self._calls.values():
                    scope.deadline = anyio.current_time() + idle_s
        if action not in _ELICIT_ACTIONS:
            return ErrorData(code=INTERNAL_ERROR, message=f"unknown elicitation action {action!r}")
        return ElicitResult(action=action, content=content if action == "accept" else None)

    def _make_client(self, stack: AsyncExitStack) -> Client:
        # The elicitation capability is advertised only when there is someone to ask.
        elicit = self._on_elicit if self.elicit is not None else None
        if self.inproc is not None:
            return Client(self.inproc, cache=None, elicitation_callback=elicit)
        cfg = self.config
        if cfg.command:
            from mcp.client.stdio import stdio_client

            params = StdioServerParameters(command=cfg.command, args=list(cfg.args), env=cfg.env or None, cwd=cfg.cwd)
            errlog = self._errlog(stack)
            return Client(stdio_client(params, errlog=errlog), cache=None, elicitation_callback=elicit)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=cfg.headers or None)
        stack.push_async_callback(http.aclose)
        return Client(streamable_http_client(cfg.url or "", http_client=http), cache=None, elicitation_callback=elicit)

    async def _session_once(self) -> bool:
        """Connect, list, serve until broken or stopped. True if the session got ready."""
        self._broken = anyio.Event()
        self._set("starting" if self.state != "reconnecting" else "reconnecting", self.error)
        ready = False
        try:
            # The deadline scope encloses the exit stack, so the SDK's task groups nest inside it.
            with anyio.CancelScope(deadline=anyio.current_time() + self.connect_timeout) as scope:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(self._make_client(stack))
                    await self._load_catalog(client)
                    scope.deadline = math.inf
                    self.protocol_version = client.protocol_version
                    self._client = client
                    ready = True
                    self._set("ready")
                    await self._serve(client)
            if scope.cancelled_caught and not ready:
                raise TimeoutError(f"did not answer within {self.connect_timeout:g}s")
        except Exception as exc:
            if self._pump is not None:  # let the last lines reach the log before quoting them
                await anyio.to_thread.run_sync(self._pump.join, 1.0)
            tail = self._stderr_tail() if self.inproc is None and self.config.command else ""
            verb = "connection lost" if ready else "failed to start"
            self._client = None
            self._failed_at = time.monotonic()
            self._set("failed", f"{verb}: {describe_error(exc)}" + (f" (stderr: {tail})" if tail else ""))
            return ready
        self._client = None
        if not self._stop.is_set():
            self._failed_at = time.monotonic()
            self._set("failed", "the server closed the connection")
        return ready

    async def _serve(self, client: Client) -> None:
        next_ping = anyio.current_time() + self.health_interval
        while not self._broken.is_set():
            with anyio.move_on_after(0.5):
                await self._broken.wait()
            if self._broken.is_set():
                return
            dispatcher = getattr(client.session, "_dispatcher", None)
            if getattr(dispatcher, "_closed", False):
                return  # the transport hit EOF: the process exited
            if anyio.current_time() >= next_ping:
                next_ping = anyio.current_time() + self.health_interval
                try:
                    with anyio.fail_after(10):
                        await self._ping(client)
                except Exception as exc:
                    self.error = self.redactor.scrub(f"health ping failed: {describe_error(exc)}")
                    return

    async def _ping(self, client: Client) -> None:
        if client.protocol_version.startswith(("2024", "2025")):
            with warnings.catch_warnings():  # ping is fine on the handshake-era protocol these servers speak
                warnings.simplefilter("ignore")
                await client.send_ping()
        else:
            await client.list_tools(cache_mode="refresh")

    async def _load_catalog(self, client: Client) -> None:
        caps = client.server_capabilities
        tools: list[Any] = []
        seen: set[str] = set()
        self.warnings = []
        cursor: str | None = None
        for _ in range(_PAGE_CAP):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                if tool.name in seen:
                    self.warnings.append(f"tool {tool.name!r} listed twice; keeping the first")
                    log.warning("MCP server %s lists tool %r twice; keeping the first", self.name, tool.name)
                    continue
                seen.add(tool.name)
                tools.append(tool)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools = tools
        self.prompts, self.resources = [], []
        if caps.prompts is not None:
            try:
                self.prompts = list((await client.list_prompts()).prompts)
            except Exception as exc:  # optional: a broken prompt listing must not lose the tools
                self.warnings.append(f"prompts/list failed: {describe_error(exc)}")
        if caps.resources is not None:
            try:
                self.resources = list((await client.list_resources()).resources)
            except Exception as exc:
                self.warnings.append(f"resources/list failed: {describe_error(exc)}")
        if self.on_catalog_changed is not None:
            self.on_catalog_changed(self)

    # -- calls (from any task) --------------------------------------------------------------------

    async def wait_ready(self, timeout: float | None = None) -> Client | None:
        """The live client, starting the server if needed; None (with ``self.error``) if it cannot start."""
        timeout = self.connect_timeout + 1 if timeout is None else timeout
        with anyio.move_on_after(timeout):
            while True:
                if self.state == "ready" and self._client is not None:
                    return self._client
                if self.state == "failed" and time.monotonic() - self._failed_at < 1.0:
                    return None  # it just failed: report that rather than wait out a backoff
                if self.state in ("stopped", "failed"):
                    self._wanted.set()
                await self._changed.wait()
        if self.error is None:
            self.error = f"not ready within {timeout:g}s"
        return None

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None = None,
        hard_cap: float | None = None,
        progress: ProgressFn | None = None,
        meta: dict[str, Any] | None = None,
    ) -> ToolResult:
        started = time.perf_counter()
        client = self._client if self.state == "ready" else None
        if client is not None and getattr(getattr(client.session, "_dispatcher", None), "_closed", False):
            self.mark_broken()
            client = None
        if client is None:
            client = await self.wait_ready()
            if client is None:
                return ToolResult.error(
                    "unavailable", f"server {self.name} is unavailable: {self.error}", time.perf_counter() - started
                )
        idle_s = timeout or self.config.timeout
        cap_s = hard_cap or self.config.hard_cap_s
        events = 0
        outcome: ToolResult | None = None
        with anyio.move_on_after(cap_s) as cap, anyio.CancelScope(deadline=anyio.current_time() + idle_s) as idle:

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                nonlocal events
                events += 1
                if not self._eliciting:
                    idle.deadline = anyio.current_time() + idle_s
                if progress is not None:
                    await progress(value, total, message)

            key = id(idle)
            self._calls[key] = (idle, idle_s, meta)
            if self._eliciting:
                idle.deadline = math.inf
            try:
                result = await client.call_tool(tool, arguments, progress_callback=on_progress, meta=meta)  # type: ignore[arg-type]
            except MCPError as exc:
                if exc.code == CONNECTION_CLOSED:
                    self.mark_broken()
                    outcome = ToolResult.error(
                        "unavailable", f"server {self.name} closed the connection during the call"
                    )
                else:
                    outcome = ToolResult.error("tool", self.redactor.scrub(f"{exc.message} (code {exc.code})"))
            except (ValidationError, ValueError) as exc:
                outcome = ToolResult.error("protocol", f"server {self.name} returned an invalid result: {exc}"[:500])
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                self.mark_broken()
                outcome = ToolResult.error(
                    "unavailable", f"server {self.name} connection failed: {describe_error(exc)}"
                )
            else:
                text = self.redactor.scrub(content_text(result.content))
                outcome = ToolResult(text=text, is_error=bool(result.is_error), structured=result.structured_content)
                if result.is_error:
                    outcome.error_kind = "tool"
            finally:
                self._calls.pop(key, None)
        elapsed = time.perf_counter() - started
        if outcome is None or idle.cancelled_caught or cap.cancelled_caught:
            why = f"hard cap of {cap_s:g}s" if cap.cancelled_caught else f"no result or progress for {idle_s:g}s"
            outcome = ToolResult.error("timeout", f"{self.name}.{tool} timed out ({why}); cancelled on the server")
        outcome.elapsed_s = elapsed
        outcome.progress_events = events
        return outcome
