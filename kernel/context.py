"""The kernel's implementation of ``aios.Context``: each method is a syscall made on behalf of one pid."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aios.api import ChatMessage, LLMHelpers, SyscallContext
from kernel.syscalls import LLMChatRequest

if TYPE_CHECKING:
    from kernel.process import Process

__all__ = ["ContextKernel", "ProcessContext"]


class ContextKernel(Protocol):
    """What a process's context calls: ``kernel.kernel.Kernel`` (which imports this module)."""

    def llm_chat(self, proc: Process, request: LLMChatRequest) -> AsyncIterator[str]: ...

    def write_output(self, proc: Process, text: str) -> None: ...

    def end_turn(self, proc: Process) -> None: ...

    async def read_input(self, proc: Process) -> str | None: ...

    async def dispatch(self, proc: Process, name: str, payload: dict[str, Any]) -> Any: ...


class _ProcessLLM(LLMHelpers):
    def __init__(self, kernel: ContextKernel, proc: Process) -> None:
        self._kernel = kernel
        self._proc = proc

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        ignore_eos: bool = False,
        json_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        request = LLMChatRequest.model_validate(
            {
                "messages": list(messages),
                "max_tokens": max_tokens,
                "temperature": temperature,
                "top_p": top_p,
                "seed": seed,
                "stop": list(stop),
                "ignore_eos": ignore_eos,
                "json_schema": json_schema,
            }
        )
        return self._kernel.llm_chat(self._proc, request)


class ProcessContext(SyscallContext):
    """``fs``, ``memory``, ``tasks``, ``tools``, ``kill``, ``ask_user`` and ``log`` come from ``SyscallContext``
    (aios.api): the same facades over ``call`` that an out-of-process agent gets."""

    def __init__(self, kernel: ContextKernel, proc: Process) -> None:
        self._kernel = kernel
        self._proc = proc
        self._llm = _ProcessLLM(kernel, proc)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def name(self) -> str:
        return self._proc.agent

    @property
    def interactive(self) -> bool:
        return self._proc.interactive

    @property
    def llm(self) -> _ProcessLLM:
        return self._llm

    async def write(self, text: str) -> None:
        self._kernel.write_output(self._proc, text)

    async def end_turn(self) -> None:
        self._kernel.end_turn(self._proc)

    async def input(self) -> str | None:
        return await self._kernel.read_input(self._proc)

    async def call(self, syscall: str, **payload: Any) -> Any:
        """Make any table syscall by name (``await ctx.call("fs.search", query="…")``)."""
        return await self._kernel.dispatch(self._proc, syscall, payload)

    async def spawn(self, agent: str, goal: str = "", *, caps: dict[str, Any] | None = None) -> int:
        """Start a child agent (``proc.spawn``): it gets at most this agent's capabilities, narrowed further
        by ``caps`` (same keys as Capabilities). Returns the child's pid."""
        payload: dict[str, Any] = {"agent": agent, "goal": goal}
        if caps is not None:
            payload["caps"] = caps
        return int((await self.call("proc.spawn", **payload))["pid"])

    async def wait(self, pid: int) -> dict[str, Any]:
        """Wait for one of this agent's children to end (``proc.wait``); its final process-table entry."""
        return dict(await self.call("proc.wait", pid=pid))
