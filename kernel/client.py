"""The one interface every front end uses to drive a kernel (``KernelClient``: the in-process ``Kernel`` or a
client for a kernel served on the local socket, `aios serve`).

``SocketClient`` implements the same ``KernelClient`` protocol as the in-process kernel, so a front end (or
a test) runs unchanged against either. Given a process token instead of the front-end token it acts as
that one agent: ``call`` makes syscalls and ``chat`` streams LLM replies, checked against that agent's
capabilities. ``DaemonClient`` is the small synchronous part the CLI uses: it speaks HTTP/1.1 with the
standard library (no httpx, no anyio on import), so a command answered by the daemon starts fast.

    async with SocketClient() as kernel:          # the front-end token from the runtime dir
        pid = await kernel.spawn("chat", "hello")
        print(await kernel.wait(pid))
"""

from __future__ import annotations

import json
import math
import os
import select
import socket
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlencode

from aios import paths
from aios.api import Agent, Context
from aios.errors import AiosError, BudgetExceeded, PermissionDenied, ProcessNotFound, UnknownSyscall, UsageError

if TYPE_CHECKING:  # httpx and anyio are imported where the async client needs them (start-up stays light)
    import httpx
    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from kernel.events import KernelEvent

__all__ = [
    "DaemonClient",
    "ExternalAgent",
    "KernelClient",
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


def _result(status: int, raw: bytes) -> Any:
    """The ``result`` of a kernel answer, or its error raised as the matching AiosError."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise AiosError(f"kernel answered {status} without JSON") from None
    if status >= 400 or (isinstance(data, dict) and "error" in data):
        error = data.get("error", {}) if isinstance(data, dict) else {}
        by_status = {400: UsageError, 401: AuthError, 403: PermissionDenied, 404: ProcessNotFound, 413: UsageError}
        cls = _ERRORS.get(error.get("type", "")) or by_status.get(status, AiosError)
        raise cls(error.get("message", f"kernel error {status}"), error.get("hint"))
    return data.get("result") if isinstance(data, dict) else None


def _raise_for(response: httpx.Response) -> Any:
    return _result(response.status_code, response.content)


class _Connection:
    """One HTTP/1.1 keep-alive connection on the kernel's Unix socket. The standard library's http.client
    would pull in the email package (tens of ms at start-up); the kernel answers with plain
    content-length or chunked bodies, which is all this reads."""

    def __init__(self, path: str, timeout: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._buf = b""

    def stale(self) -> bool:
        """An idle connection the server has closed (or sent something on) is not reused."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.sock.close()

    def exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes, bool]:
        """Send one request; return (status, body, whether the server keeps the connection open)."""
        lines = [f"{method} {url} HTTP/1.1", "host: aios", f"content-length: {len(body or b'')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ConnectionError(f"not an HTTP answer: {head[0][:80]!r}")
        fields: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if "chunked" in fields.get("transfer-encoding", "").lower():
            data = b""
            while size := int(self._until(b"\r\n").split(b";")[0], 16):
                data += self._exactly(size)
                self._until(b"\r\n")
            while self._until(b"\r\n"):  # trailers, up to the empty line
                pass
        elif "content-length" in fields:
            data = self._exactly(int(fields["content-length"]))
        else:  # no length: the body runs to the end of the connection
            data = self._buf + b"".join(iter(lambda: self.sock.recv(65536), b""))
            self._buf = b""
            return int(parts[1]), data, False
        keep = fields.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        return int(parts[1]), data, keep

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the kernel closed the connection")
        self._buf += chunk

    def _until(self, marker: bytes) -> bytes:
        while (at := self._buf.find(marker)) < 0:
            self._fill()
        out, self._buf = self._buf[:at], self._buf[at + len(marker) :]
        return out

    def _exactly(self, size: int) -> bytes:
        while len(self._buf) < size:
            self._fill()
        out, self._buf = self._buf[:size], self._buf[size:]
        return out


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class DaemonClient:
    """Synchronous calls to a running kernel (thread-safe: each call takes its own pooled connection)."""

    def __init__(self, path: Path | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.path = path or default_socket()
        if token is None:
            token = _read_token(default_token_file() if path is None else self.path.parent / "frontend.token")
        if not token:
            raise AuthError(f"no front-end token next to {self.path}", "is `aios serve` running as you?")
        self.token = token
        self.timeout = timeout
        self._headers = {"authorization": f"Bearer {token}"}
        self._idle: list[_Connection] = []
        self._pool_lock = threading.Lock()

    def _connection(self) -> _Connection:
        """An idle keep-alive connection still open, else a new one."""
        with self._pool_lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.stale():
                    return conn
                conn.close()
        return _Connection(str(self.path), self.timeout)

    def request(self, method: str, path: str, body: Any = None, *, wait: bool = False, **params: Any) -> Any:
        """One call; ``wait`` lifts the read timeout (for work that takes as long as it takes, like indexing)."""
        query = {k: _query_value(v) for k, v in params.items() if v is not None}
        url = path + ("?" + urlencode(query) if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        conn: _Connection | None = None
        try:
            conn = self._connection()
            conn.sock.settimeout(None if wait else self.timeout)
            status, raw, keep = conn.exchange(method, url, headers, data)
        except (OSError, ValueError) as exc:  # ConnectionError and socket timeouts are OSErrors
            if conn is not None:
                conn.close()
            raise AiosError(f"cannot reach the kernel at {self.path}: {exc}", "is `aios serve` running?") from None
        if keep:
            with self._pool_lock:
                self._idle.append(conn)
        else:
            conn.close()
        return _result(status, raw)

    def close(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

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
        """Run a syscall in the kernel as the user (``fs.*``, ``tool.*``, ``mem.*``, ``task.*``: checked against
        ``[access.user]`` and audited as agent "user")."""
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
        import httpx

        from kernel.unix_streams import unix_transport

        super().__init__(path, token, timeout=timeout)
        self._async = httpx.AsyncClient(
            transport=unix_transport(str(self.path)),
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
        import anyio

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
        import httpx

        try:
            response = await self._async.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise AiosError(f"cannot reach the kernel at {self.path}: {exc}", "is `aios serve` running?") from None
        return _raise_for(response)

    # -- KernelClient -----------------------------------------------------------------------------------

    async def spawn(
        self,
        agent: str,
        goal: str = "",
        *,
        interactive: bool | None = None,
        priority: str | None = None,
        unconfined: bool = False,
        allow_read: tuple[str, ...] = (),
        allow_write: tuple[str, ...] = (),
    ) -> int:
        body: dict[str, Any] = {"agent": agent, "goal": goal, "interactive": interactive, "priority": priority}
        if unconfined:  # a plugin agent without Landlock: the user said so
            body["unconfined"] = True
        if allow_read or allow_write:  # folders the user grants this run (`aios run --allow`)
            body["allow_read"], body["allow_write"] = list(allow_read), list(allow_write)
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

    async def approve(
        self, request_id: str, answer: str, *, by: str = "socket", content: dict[str, Any] | None = None
    ) -> None:
        body: dict[str, Any] = {"id": request_id, "answer": answer, "by": by}
        if content is not None:
            body["content"] = content
        await self.arequest("POST", "/v1/approve", body)

    def subscribe(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Kernel events as they happen (server-sent events, turned back into event objects)."""
        if self._tg is None:
            raise UsageError("use the SocketClient as `async with SocketClient() as client:`")
        import anyio

        send, receive = anyio.create_memory_object_stream["KernelEvent"](math.inf)
        self._tg.start_soon(self._pump, send, approver)
        return receive

    async def open_events(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Like ``subscribe``, but returns once the kernel has registered the subscription (no event missed)."""
        if self._tg is None:
            raise UsageError("use the SocketClient as `async with SocketClient() as client:`")
        import anyio

        send, receive = anyio.create_memory_object_stream["KernelEvent"](math.inf)
        await self._tg.start(self._pump, send, approver)
        return receive

    async def _pump(
        self,
        send: MemoryObjectSendStream[KernelEvent],
        approver: bool,
        *,
        task_status: TaskStatus[None] | None = None,
    ) -> None:
        import anyio

        from kernel.events import event_from_dict

        params = {"approver": "true"} if approver else None
        with send:
            async with self._async.stream("GET", "/v1/events", params=params) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                if task_status is not None:
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
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


@runtime_checkable
class KernelClient(Protocol):
    #: The model the kernel's engine serves.
    model_name: str

    def agents(self) -> dict[str, str]:
        """Agent names to descriptions."""
        ...

    async def spawn(
        self, agent: str, goal: str = "", *, interactive: bool | None = None, priority: str | None = None
    ) -> int: ...

    async def send(self, pid: int, text: str) -> None: ...

    async def close_input(self, pid: int) -> None: ...

    async def kill(self, pid: int) -> None: ...

    async def suspend(self, pid: int) -> None: ...

    async def resume(self, pid: int) -> None: ...

    async def nice(self, pid: int, priority: str) -> None: ...

    async def wait(self, pid: int) -> dict[str, Any]: ...

    def ps(self) -> list[dict[str, Any]]: ...

    def subscribe(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Kernel events. ``approver``: this front end answers approval requests while the stream is open
        (without one attached, requests are denied after ``[access] headless_timeout_s``)."""
        ...

    def approvals(self) -> list[dict[str, Any]]:
        """Approval requests waiting for an answer."""
        ...

    async def approve(
        self, request_id: str, answer: str, *, by: str = ..., content: dict[str, Any] | None = ...
    ) -> None:
        """Answer one: ``allow_once``, ``allow_always``, ``deny`` or ``deny_always``; a form request (kind
        ``elicit``): ``accept`` with ``content``, ``decline`` or ``cancel``."""
        ...
