"""The one door for front ends: the running kernel's socket when one runs, else an in-process kernel.

Decided here, in one place. Either way the front end acts as the ``user`` principal: each syscall it makes
goes through ``Kernel.dispatch`` (checked against ``[access.user]``, audited as agent "user", confined), on
the daemon over ``POST /v1/fs`` with the front-end token, in-process through ``Kernel.call``.

    result = run_as_user(lambda user: user.call("tool.call", tool="time.now", args={}))
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Any, Protocol, TypeVar

from aios.errors import AiosError

__all__ = ["FrontEnd", "UserClient", "call_as_user", "connect", "first_error", "open_frontend", "run_as_user"]

T = TypeVar("T")


class UserClient(Protocol):
    """What a front end holds: syscalls as the user, and where they run."""

    #: "daemon" (a running kernel over its socket) or "in-process" (a kernel started for this command).
    where: str

    async def call(self, syscall: str, **payload: Any) -> Any: ...


class _DaemonUser:
    where = "daemon"

    def __init__(self, client: Any) -> None:
        self._client = client

    async def call(self, syscall: str, **payload: Any) -> Any:
        import anyio

        return await anyio.to_thread.run_sync(lambda: self._client.fs(syscall, **payload))


class _LocalUser:
    where = "in-process"

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel

    async def call(self, syscall: str, **payload: Any) -> Any:
        return await self.kernel.call(syscall, **payload)


@asynccontextmanager
async def connect(*, loading: Callable[[str], AbstractContextManager[Any]] | None = None) -> AsyncIterator[UserClient]:
    """A ``UserClient`` for the running kernel if there is one, else for a kernel started here (the model
    is loaded; ``loading(label)`` may show a spinner meanwhile). Never a second writer beside a daemon."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            yield _DaemonUser(daemon)
        finally:
            daemon.close()
        return
    import anyio

    from aios.config import load_config
    from kernel.kernel import load_runtime, open_kernel

    config = load_config()
    with (loading or (lambda label: nullcontext()))(f"loading model {config.llm.model or 'default'}…"):
        runtime = await anyio.to_thread.run_sync(load_runtime, config)
    async with open_kernel(config, runtime=runtime) as kernel:
        yield _LocalUser(kernel)


def run_as_user(
    work: Callable[[UserClient], Awaitable[T]], *, loading: Callable[[str], AbstractContextManager[Any]] | None = None
) -> T:
    """``await work(user)`` through ``connect()``, from synchronous code (the CLI); the first AiosError of a
    failed kernel task group is raised as itself."""

    async def main() -> T:
        async with connect(loading=loading) as user:
            return await work(user)

    import anyio

    try:
        return anyio.run(main)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


def first_error(group: BaseExceptionGroup) -> BaseException:
    """A task group wraps what failed; the user wants the one error (an AiosError if any)."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    return next((e for e in leaves if isinstance(e, AiosError)), leaves[0] if leaves else group)


class FrontEnd:
    """What a full front end (the TUI) holds: the ``KernelClient`` surface (processes, events, approvals) and
    syscalls as the ``user`` principal, over the socket or in-process alike. ``where`` says which."""

    def __init__(self, client: Any, where: str, call: Callable[..., Awaitable[Any]]) -> None:
        self.client = client
        self.where = where
        self._call = call

    async def call(self, syscall: str, /, **payload: Any) -> Any:
        """A syscall as the user: checked against ``[access.user]`` and audited like any."""
        return await self._call(syscall, **payload)


@asynccontextmanager
async def open_frontend(
    config: Any = None, *, runtime: Any = None, store: Any = None, plugins: Any = None
) -> AsyncIterator[FrontEnd]:
    """The running kernel over its socket if there is one; else an in-process kernel (``config``, ``runtime``,
    ``store`` and ``plugins`` as ``open_kernel`` takes them), which also serves the socket so other terminals
    (`aios ps`, `aios approvals watch`) see and drive it."""
    from kernel.client import SocketClient, daemon_client

    daemon = daemon_client()
    if daemon is not None:
        daemon.close()
        async with SocketClient() as client:

            async def over_socket(syscall: str, /, **payload: Any) -> Any:
                return await client.arequest("POST", "/v1/fs", {"syscall": syscall, "payload": payload})

            yield FrontEnd(client, "daemon", over_socket)
        return
    from aios.config import load_config
    from kernel.kernel import open_kernel
    from kernel.server import serve_if_free

    async with open_kernel(config or load_config(), runtime=runtime, store=store, plugins=plugins) as kernel:
        async with serve_if_free(kernel):

            async def in_process(syscall: str, /, **payload: Any) -> Any:
                return await kernel.dispatch(kernel.user, syscall, payload)

            yield FrontEnd(kernel, "in-process", in_process)


def call_as_user(
    syscall: str,
    *,
    loading: Callable[[str], AbstractContextManager[Any]] | None = None,
    before_start: Callable[[], None] | None = None,
    **payload: Any,
) -> Any:
    """One syscall as the user, from synchronous code (a CLI command's one client call): a plain socket call
    when a kernel runs (no event loop, no kernel import: the fast path), else through ``run_as_user``
    (``before_start()`` first: it may refuse in a moment what would fail after the model loads)."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            return daemon.fs(syscall, **payload)
        finally:
            daemon.close()
    if before_start is not None:
        before_start()
    return run_as_user(lambda user: user.call(syscall, **payload), loading=loading)
