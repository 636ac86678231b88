"""A client for a kernel served on the local socket (`aios serve`).

``SocketClient`` implements the same ``KernelClient`` protocol as the in-process kernel, so a front end (or
a test) runs unchanged against either. Given a process token instead of the front-end token it acts as
that one agent: ``call`` makes syscalls and ``chat`` streams LLM replies, checked against that agent's
capabilities. ``DaemonClient`` is the small synchronous part the CLI uses.

    async with SocketClient() as kernel:          # the front-end token from the runtime dir
        pid = await kernel.spawn("chat", "hello")
        print(await kernel.wait(pid))
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpx

from aios import paths
from aios.api import Agent, Context
from aios.errors import AiosError, BudgetExceeded, PermissionDenied, ProcessNotFound, UnknownSyscall, UsageError

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from kernel.events import KernelEvent

__all__ = [
    "DaemonClient",
    "ExternalAgent",
    "SocketClient",
    "daemon_client",
    "default_socket",
    "default_token_file",
]

_BASE = "http://aios"


class ExternalAgent(Agent):
    """Base for an agent whose work runs in another program: its kernel process only holds the identity
    (pid, token, capabilities) until the program calls ``proc.exit`` or the user kills it. Give it a
    manifest, register it from a plugin, spawn it with ``SocketClient.spawn_with_token``."""

    async def run(self, ctx: Context, goal: str) -> str | None:
        while await ctx.input() is not None:
            pass
        return None


def default_socket() -> Path:
    return Path(os.environ.get("AIOS_SOCKET") or paths.runtime_dir() / "kernel.sock")


def default_token_file() -> Path:
    return default_socket().parent / "frontend.token"


class AuthError(AiosError):
    """The kernel refused the token (missing, forged, or its process has ended)."""


_ERRORS: dict[str, type[AiosError]] = {
    "UsageError": UsageError,
    "PayloadTooLarge": UsageError,
    "PermissionDenied": PermissionDenied,
    "ProcessNotFound": ProcessNotFound,
    "UnknownSyscall": UnknownSyscall,
    "UnknownAgentError": UsageError,
    "BudgetExceeded": BudgetExceeded,
    "TokenError": AuthError,
}


def _raise_for(response: httpx.Response) -> Any:
    try:
        data = response.json()
    except ValueError:
        raise AiosError(f"kernel answered {response.status_code} without JSON") from None
    if response.status_code >= 400 or "error" in data:
        error = data.get("error", {})
        by_status = {400: UsageError, 401: AuthError, 403: PermissionDenied, 404: ProcessNotFound, 413: UsageError}
        cls = _ERRORS.get(error.get("type", "")) or by_status.get(response.status_code, AiosError)
        raise cls(error.get("message", f"kernel error {response.status_code}"), error.get("hint"))
    return data.get("result")


class DaemonClient:
    """Synchronous calls to a running kernel."""

    def __init__(self, path: Path | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.path = path or default_socket()
        if token is None:
            token = _read_token(default_token_file() if path is None else self.path.parent / "frontend.token")
        if not token:
            raise AuthError(f"no front-end token next to {self.path}", "is `aios serve` running as you?")
        self.token = token
        self._headers = {"authorization": f"Bearer {token}"}
        self._sync = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.path)), base_url=_BASE, headers=self._headers, timeout=timeout
        )

    def request(self, method: str, path: str, body: Any = None, *, wait: bool = False, **params: Any) -> Any:
        """One call; ``wait`` lifts the read timeout (for work that takes as long as it takes, like indexing)."""
        query = {k: v for k, v in params.items() if v is not None}
        timeout: Any = httpx.Timeout(self._sync.timeout.connect, read=None) if wait else httpx.USE_CLIENT_DEFAULT
        try:
            response = self._sync.request(method, path, json=body, params=query or None, timeout=timeout)
        except httpx.TransportError as exc:
            raise AiosError(f"cannot reach the kernel at {self.path}: {exc}", "is `aios serve` running?") from None
        return _raise_for(response)

    def close(self) -> None:
        self._sync.close()

    # -- the synchronous half of KernelClient --------------------------------------------------------

    def agents(self) -> dict[str, str]:
        return dict(self.request("GET", "/v1/agents"))

    def ps(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/ps"))

    def approvals(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/approvals"))

    def hello(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/hello"))

    def fs(self, syscall: str, **payload: Any) -> Any:
        """Run an ``fs.*`` syscall in the kernel for the user (it owns the file index while it runs)."""
        return self.request("POST", "/v1/fs", {"syscall": syscall, "payload": payload}, wait=True)


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def daemon_client() -> DaemonClient | None:
    """A client for the running daemon, or None when no kernel serves on the socket."""
    path = default_socket()
    if not path.exists():
        return None
    try:
        client = DaemonClient(path)
        client.hello()
    except AiosError:
        return None
    return client


class SocketClient(DaemonClient):
    """The ``KernelClient`` protocol over the socket. Use as an async context manager."""

    model_name: str

    def __init__(self, path: Path | None = None, token: str | None = None, *, timeout: float = 60.0) -> None:
        super().__init__(path, token, timeout=timeout)
        self._async = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(self.path)),
            base_url=_BASE,
            headers=self._headers,
            timeout=httpx.Timeout(timeout, read=None),
        )
        self._tg: TaskGroup | None = None
        self._tg_cm: Any = None
        self.pid: int | None = None

    async def __aenter__(self) -> SocketClient:
        try:
            hello = await self.arequest("GET", "/v1/hello")
        except BaseException:
            await self._async.aclose()
            self.close()
            raise
        self._tg_cm = anyio.create_task_group()
        self._tg = await self._tg_cm.__aenter__()
        self.model_name = hello["model_name"]
        self.pid = (hello.get("process") or {}).get("pid")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            await self._tg_cm.__aexit__(kind, exc, tb)
            self._tg = None
        await self._async.aclose()
        self.close()

    async def arequest(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._async.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise AiosError(f"cannot reach the kernel at {self.path}: {exc}", "is `aios serve` running?") from None
        return _raise_for(response)

    # -- KernelClient -----------------------------------------------------------------------------------

    async def spawn(
        self, agent: str, goal: str = "", *, interactive: bool | None = None, priority: str | None = None
    ) -> int:
        body = {"agent": agent, "goal": goal, "interactive": interactive, "priority": priority}
        return int((await self.arequest("POST", "/v1/spawn", body))["pid"])

    async def spawn_with_token(self, agent: str, goal: str = "", *, interactive: bool | None = True) -> tuple[int, str]:
        """Spawn and get the process's token, to run the agent in another program."""
        body = {"agent": agent, "goal": goal, "interactive": interactive, "token": True}
        result = await self.arequest("POST", "/v1/spawn", body)
        return int(result["pid"]), str(result["token"])

    async def send(self, pid: int, text: str) -> None:
        await self.arequest("POST", "/v1/send", {"pid": pid, "text": text})

    async def close_input(self, pid: int) -> None:
        await self.arequest("POST", "/v1/close_input", {"pid": pid})

    async def kill(self, pid: int) -> None:
        await self.arequest("POST", "/v1/kill", {"pid": pid})

    async def suspend(self, pid: int) -> None:
        await self.arequest("POST", "/v1/suspend", {"pid": pid})

    async def resume(self, pid: int) -> None:
        await self.arequest("POST", "/v1/resume", {"pid": pid})

    async def nice(self, pid: int, priority: str) -> None:
        await self.arequest("POST", "/v1/nice", {"pid": pid, "priority": priority})

    async def wait(self, pid: int) -> dict[str, Any]:
        return dict(await self.arequest("POST", "/v1/wait", {"pid": pid}))

    async def approve(self, request_id: str, answer: str, *, by: str = "socket") -> None:
        await self.arequest("POST", "/v1/approve", {"id": request_id, "answer": answer, "by": by})

    def subscribe(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Kernel events as they happen (server-sent events, turned back into event objects)."""
        if self._tg is None:
            raise UsageError("use the SocketClient as `async with SocketClient() as client:`")
        send, receive = anyio.create_memory_object_stream["KernelEvent"](math.inf)
        self._tg.start_soon(self._pump, send, approver)
        return receive

    async def open_events(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Like ``subscribe``, but returns once the kernel has registered the subscription (no event missed)."""
        if self._tg is None:
            raise UsageError("use the SocketClient as `async with SocketClient() as client:`")
        send, receive = anyio.create_memory_object_stream["KernelEvent"](math.inf)
        await self._tg.start(self._pump, send, approver)
        return receive

    async def _pump(
        self,
        send: MemoryObjectSendStream[KernelEvent],
        approver: bool,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        from kernel.events import event_from_dict

        params = {"approver": "true"} if approver else None
        with send:
            async with self._async.stream("GET", "/v1/events", params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                task_status.started()
                async for _, data in _sse_events(response):
                    event = event_from_dict(data)
                    if event is None:  # a type this client does not know (another kernel version): skipped
                        continue
                    try:
                        send.send_nowait(event)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return

    # -- as one agent (process token) -------------------------------------------------------------------

    async def call(self, syscall: str, **payload: Any) -> Any:
        """Make a table syscall as the token's process."""
        return await self.arequest("POST", "/v1/call", {"syscall": syscall, "payload": payload})

    async def chat(self, messages: Sequence[dict[str, str]], **options: Any) -> AsyncIterator[str]:
        """Stream an ``llm.chat`` reply as the token's process."""
        body = {"messages": list(messages), **options}
        async with self._async.stream("POST", "/v1/chat", json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            async for event, data in _sse_events(response):
                if event == "error":
                    error = data.get("error", {})
                    raise _ERRORS.get(error.get("type", ""), AiosError)(error.get("message", "llm.chat failed"))
                if event == "end":
                    return
                yield str(data.get("text", ""))


async def _sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event, data = "message", []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
