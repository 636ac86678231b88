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

import anyio

from aios.errors import AiosError

__all__ = ["UserClient", "connect", "first_error", "run_as_user"]

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
