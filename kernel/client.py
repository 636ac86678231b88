"""The one interface every front end uses to drive a kernel: in-process (``kernel.Kernel``) or over the
local socket (``aios.client.SocketClient``)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from anyio.streams.memory import MemoryObjectReceiveStream

from kernel.events import KernelEvent

__all__ = ["KernelClient"]


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

    async def approve(self, request_id: str, answer: str, *, by: str = ...) -> None:
        """Answer one: ``allow_once``, ``allow_always``, ``deny`` or ``deny_always``."""
        ...
