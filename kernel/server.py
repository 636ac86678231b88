"""The kernel's local socket: JSON over HTTP on a Unix socket (mode 0600), events and tokens as SSE.

Every request carries ``Authorization: Bearer <token>``. The front-end token (a file only the user can
read) drives the kernel: process table, spawn, control, approvals, audit, policy. A process token (minted at
spawn, dead once the process ends) makes syscalls as that process and nothing else: ``/v1/call`` and
``/v1/chat``. Bad input gets a JSON error with a clear message and the connection stays usable; failures are
audited. ``aios serve`` runs this over a headless kernel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aios import paths
from aios.errors import AiosError, PermissionDenied, ProcessNotFound, UsageError, first_problem
from kernel.blocking import run_blocking
from kernel.events import event_to_dict
from kernel.server_models import BODIES, ChatBody
from kernel.syscalls import LLMChatRequest
from kernel.tokens import FRONTEND, Bearer, TokenError, write_frontend_token

if TYPE_CHECKING:
    from kernel.kernel import Kernel

__all__ = ["build_app", "serve_if_free", "serve_socket", "socket_path", "token_path"]

#: Syscalls that run the model under the caller's one LLM sequence (the user's: serialised on the socket).
LLM_BACKED = frozenset({"fs.summarize", "fs.compare", "fs.ask", "fs.join", "fs.run_plan"})

log = logging.getLogger(__name__)


def socket_path() -> Path:
    """``$AIOS_SOCKET``, else ``kernel.sock`` in the runtime dir."""
    return Path(os.environ.get("AIOS_SOCKET") or paths.runtime_dir() / "kernel.sock")


def token_path() -> Path:
    return paths.runtime_dir() / "frontend.token"


class PayloadTooLarge(UsageError):
    pass


def _status(exc: AiosError) -> int:
    if isinstance(exc, TokenError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, ProcessNotFound):
        return 404
    if isinstance(exc, UsageError):
        return 400
    return 500


def error_response(exc: AiosError) -> JSONResponse:
    body = {"error": {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}}
    return JSONResponse(body, status_code=_status(exc))


async def _read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"malformed JSON: {exc}") from None


def _parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"invalid request: {first_problem(exc, 'body')}") from None


class _Api:
    """The endpoints, bound to one kernel."""

    def __init__(self, kernel: Kernel, *, max_body: int) -> None:
        self.kernel = kernel
        self.max_body = max_body
        self._fs_lock = anyio.Lock()

    def bearer(self, request: Request) -> Bearer:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return self.kernel.tokens.resolve(token.strip() if scheme.lower() == "bearer" else None)

    def live_process(self, pid: int) -> Any:
        try:
            return self.kernel.process(pid)
        except ProcessNotFound:
            return None

    def process_of(self, bearer: Bearer) -> Any:
        if bearer.pid is None:
            raise PermissionDenied("the front-end token is not a process: spawn an agent and use its token")
        proc = self.live_process(bearer.pid)
        if proc is None or not proc.alive:
            raise TokenError("invalid or expired token")
        return proc

    def audit_failure(self, request: Request, bearer: Bearer | None, exc: AiosError) -> None:
        proc = self.live_process(bearer.pid) if bearer is not None and bearer.pid is not None else None
        self.kernel.audit.record(
            pid=proc.pid if proc else None,
            agent=proc.agent if proc else ("user" if bearer is not None else "?"),
            token_id=bearer.token_id if bearer else "",
            syscall=f"socket:{request.url.path}",
            resource="",
            decision="deny",
            reason=exc.message,
        )

    def endpoint(self, name: str, handler: Callable[[Bearer, Any], Awaitable[Any]], *, frontend: bool) -> Any:
        model = BODIES.get(name)

        async def run(request: Request) -> Response:
            bearer: Bearer | None = None
            try:
                bearer = self.bearer(request)
                if frontend and not bearer.frontend:
                    raise PermissionDenied(f"{request.url.path} needs the front-end token, not a process token")
                if request.method == "POST":
                    data = await _read_json(request, self.max_body)
                else:
                    data = dict(request.query_params)
                body = _parse(model, data) if model is not None else None
                result = await handler(bearer, body)
            except AiosError as exc:
                if not getattr(exc, "audited", False):  # dispatch audits its own refusals
                    self.audit_failure(request, bearer, exc)
                return error_response(exc)
            except Exception as exc:  # a bug must not take the server down for everyone else
                log.exception("socket endpoint %s failed", request.url.path)
                return error_response(AiosError(f"internal error: {type(exc).__name__}: {exc}"))
            if bearer.frontend and request.method == "POST":  # the user's own actions are on the record too
                target = (
                    getattr(body, "pid", None)
                    or getattr(body, "agent", None)
                    or getattr(body, "id", None)
                    or getattr(body, "syscall", "")
                )
                self.kernel.audit.record(
                    pid=None,
                    agent="user",
                    token_id=FRONTEND,
                    syscall=f"socket:{request.url.path}",
                    resource=str(target),
                    decision="allow",
                )
            if isinstance(result, Response):
                return result
            return JSONResponse({"result": result})

        return run

    # -- any token -------------------------------------------------------------------------------------

    async def hello(self, bearer: Bearer, body: Any) -> dict[str, Any]:
        kernel = self.kernel
        me = None if bearer.pid is None else kernel.info(self.process_of(bearer).pid)
        return {"model_name": kernel.model_name, "frontend": bearer.frontend, "process": me}

    # -- process tokens ------------------------------------------------------------------------------

    async def call(self, bearer: Bearer, body: Any) -> Any:
        proc = self.process_of(bearer)
        try:
            return await self.kernel.dispatch(proc, body.syscall, body.payload)
        except AiosError as exc:
            exc.audited = True  # type: ignore[attr-defined]
            raise

    async def chat(self, bearer: Bearer, body: ChatBody) -> Response:
        proc = self.process_of(bearer)
        request = _parse(LLMChatRequest, body.model_dump())
        stream = self.kernel.llm_chat(proc, request)
        try:
            first = await stream.__anext__()  # a refusal (budget, model) is an error response, not a stream
        except StopAsyncIteration:
            first = None

        async def pieces() -> AsyncIterator[str]:
            try:
                if first is not None:
                    yield _sse({"text": first})
                    async for piece in stream:
                        yield _sse({"text": piece})
                yield _sse({"done": True}, "end")
            except AiosError as exc:
                yield _sse({"error": {"type": type(exc).__name__, "message": exc.message}}, "error")
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # an async generator

        return StreamingResponse(pieces(), media_type="text/event-stream")

    # -- the front end ---------------------------------------------------------------------------------

    async def fs(self, bearer: Bearer, body: Any) -> Any:
        """A syscall by the person at the terminal (``aios fs``, ``aios mcp call``...): the kernel's ``user``
        principal, through ``Kernel.dispatch`` like any agent's call (validated, checked against
        ``[access.user]``, audited as agent "user", confined)."""
        kernel = self.kernel
        try:
            if body.syscall in LLM_BACKED:  # they share the user's one LLM sequence: one at a time
                async with self._fs_lock:
                    return await kernel.dispatch(kernel.user, body.syscall, body.payload)
            return await kernel.dispatch(kernel.user, body.syscall, body.payload)
        except PermissionDenied as exc:
            exc.audited = True  # type: ignore[attr-defined]  # dispatch audited the refusal
            raise

    async def ps(self, bearer: Bearer, body: Any) -> Any:
        return self.kernel.ps()

    async def agents(self, bearer: Bearer, body: Any) -> Any:
        return self.kernel.agents()

    async def spawn(self, bearer: Bearer, body: Any) -> Any:
        kernel = self.kernel
        pid = await kernel.spawn(
            body.agent,
            body.goal,
            interactive=body.interactive,
            priority=body.priority,
            unconfined=body.unconfined,
            allow_read=tuple(body.allow_read),
            allow_write=tuple(body.allow_write),
        )
        out: dict[str, Any] = {"pid": pid}
        if body.token:
            out["token"] = kernel.tokens.mint(pid)  # re-minted: only the caller that asked holds it
        return out

    async def send(self, bearer: Bearer, body: Any) -> Any:
        await self.kernel.send(body.pid, body.text)

    async def control(self, bearer: Bearer, body: Any, what: str) -> Any:
        kernel = self.kernel
        if what == "nice":
            await kernel.nice(body.pid, body.priority)
        elif what == "wait":
            return await kernel.wait(body.pid)
        else:
            await getattr(kernel, what)(body.pid)
        return None

    async def approvals(self, bearer: Bearer, body: Any) -> Any:
        return self.kernel.approvals()

    async def approve(self, bearer: Bearer, body: Any) -> Any:
        await self.kernel.approve(body.id, body.answer, by=body.by or "socket", content=body.content)

    async def audit(self, bearer: Bearer, body: Any) -> Any:
        kernel = self.kernel  # waits for the audit writer, then reads SQLite: not on the event loop
        return await run_blocking(
            kernel.audit_rows, agent=body.agent, denied_only=body.denied, limit=body.limit, pool="db"
        )

    async def policy(self, bearer: Bearer, body: Any) -> Any:
        from dataclasses import asdict

        policy = self.kernel.guard.policy
        return [asdict(r) for r in policy.rules(body.agent)] if policy else []

    async def revoke(self, bearer: Bearer, body: Any) -> Any:
        from dataclasses import asdict

        policy = self.kernel.guard.policy
        if policy is None:
            raise UsageError("no policy store")
        return asdict(await run_blocking(policy.revoke, body.id, pool="db"))  # rewrites policy.json

    async def events(self, bearer: Bearer, body: Any) -> Response:
        receive = self.kernel.subscribe(approver=body.approver)

        async def stream() -> AsyncIterator[str]:
            with receive:
                yield ": connected\n\n"
                async for event in receive:
                    yield _sse(event_to_dict(event), "kernel")

        return StreamingResponse(stream(), media_type="text/event-stream")


def _sse(data: dict[str, Any], event: str = "message") -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def build_app(kernel: Kernel, *, max_body: int | None = None) -> Starlette:
    api = _Api(kernel, max_body=max_body or kernel.config.access.max_request_kb * 1024)
    ep = api.endpoint

    def control(what: str) -> Callable[[Bearer, Any], Awaitable[Any]]:
        return lambda bearer, body: api.control(bearer, body, what)

    routes = [
        Route("/v1/hello", ep("hello", api.hello, frontend=False), methods=["GET"]),
        Route("/v1/call", ep("call", api.call, frontend=False), methods=["POST"]),
        Route("/v1/chat", ep("chat", api.chat, frontend=False), methods=["POST"]),
        Route("/v1/fs", ep("fs", api.fs, frontend=True), methods=["POST"]),
        Route("/v1/ps", ep("ps", api.ps, frontend=True), methods=["GET"]),
        Route("/v1/agents", ep("agents", api.agents, frontend=True), methods=["GET"]),
        Route("/v1/spawn", ep("spawn", api.spawn, frontend=True), methods=["POST"]),
        Route("/v1/send", ep("send", api.send, frontend=True), methods=["POST"]),
        Route("/v1/approvals", ep("approvals", api.approvals, frontend=True), methods=["GET"]),
        Route("/v1/approve", ep("approve", api.approve, frontend=True), methods=["POST"]),
        Route("/v1/audit", ep("audit", api.audit, frontend=True), methods=["GET"]),
        Route("/v1/policy", ep("policy", api.policy, frontend=True), methods=["GET"]),
        Route("/v1/policy/revoke", ep("revoke", api.revoke, frontend=True), methods=["POST"]),
        Route("/v1/events", ep("events", api.events, frontend=True), methods=["GET"]),
    ]
    for what in ("kill", "suspend", "resume", "nice", "wait", "close_input"):
        routes.append(Route(f"/v1/{what}", ep(what, control(what), frontend=True), methods=["POST"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(UsageError(f"no endpoint {request.method} {request.url.path}"))

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def _bind(path: Path) -> socket.socket:
    if not path.parent.exists():  # an existing folder (say AIOS_SOCKET=/tmp/x.sock) is left as it is
        path.parent.mkdir(parents=True, mode=0o700)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: its kernel is gone
        else:
            raise UsageError(f"a kernel is already serving on {path}", "stop it first, or use it")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # created 0600: no window in which others could connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_socket(kernel: Kernel, path: Path | None = None) -> AsyncIterator[tuple[Path, str]]:
    """Serve ``kernel`` on the socket for the block's duration; yields (socket path, front-end token)."""
    import uvicorn

    path = path or socket_path()
    sock = _bind(path)
    token = write_frontend_token(path.parent / token_path().name)
    kernel.tokens.set_frontend(token)
    config = uvicorn.Config(build_app(kernel), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # the caller owns signals
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                while not server.started:
                    await anyio.sleep(0.01)
            log.info("kernel serving on %s (token id %s)", path, FRONTEND)
            try:
                yield path, token
            finally:
                server.should_exit = True
                server.force_exit = True
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        (path.parent / token_path().name).unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def serve_if_free(kernel: Kernel, path: Path | None = None) -> AsyncIterator[Path | None]:
    """Serve an in-process kernel (the TUI's) on the socket too, so other terminals reach it; if the socket
    cannot be had (another kernel serves it, the path is too long), log why and carry on without it."""
    try:
        cm = serve_socket(kernel, path)
        served, _ = await cm.__aenter__()
    except (AiosError, OSError) as exc:
        log.warning("not serving the local socket: %s", exc)
        yield None
        return
    try:
        yield served
    finally:
        await cm.__aexit__(None, None, None)
