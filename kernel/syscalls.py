"""Typed syscall requests. Everything an agent asks of the kernel is validated here before it is routed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from kernel.process import Process

__all__ = [
    "MAX_STOP_STRINGS",
    "SYSCALLS",
    "Access",
    "ChatMessageModel",
    "LLMChatRequest",
    "Request",
    "SyscallSpec",
    "syscall",
]

MAX_STOP_STRINGS = 8


class Request(BaseModel):
    """Base of every syscall request: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessageModel(Request):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class LLMChatRequest(Request):
    """``llm.chat``: stream a reply to a conversation."""

    messages: list[ChatMessageModel] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**32)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_STRINGS)
    #: Generate exactly ``max_tokens`` (end-of-generation banned): for benchmarks and length tests.
    ignore_eos: bool = False
    #: Constrain the reply to this JSON schema (compiled to a grammar; see kernel.grammar).
    json_schema: dict[str, Any] | None = None


# -- the syscall table -------------------------------------------------------------------------------
#
# Every syscall other than the streaming ``llm.chat`` is one entry here: a name (``fs.search``), a pydantic
# request model, an ``access`` function naming each resource the call touches, and an async handler. The
# kernel's ``dispatch`` is the single path: validate -> check every Access against the caller's capabilities
# (allow / ask the user / deny) -> audit -> run the handler -> return a JSON-able result. Domain modules
# register their calls with ``@syscall(...)``; ``kernel.syscall_table`` imports them all.

AccessKind = Literal["llm", "file", "memory", "task", "tool", "proc", "net"]


@dataclass(frozen=True)
class Access:
    """One resource a syscall touches, as access control sees it.

    ``target`` is a model name (llm), a path as the agent gave it (file), a namespace (memory), a task-tree id
    or ``"self"`` (task), ``server.tool`` (tool), a pid or agent name (proc). ``args`` carries a tool call's
    arguments for argument constraints.
    """

    kind: AccessKind
    target: str
    write: bool = False
    args: Mapping[str, Any] | None = None

    def describe(self) -> str:
        return f"{self.kind}:{self.target}" + (" (write)" if self.write else "")


#: A syscall's handler and its access function take ``(kernel, proc, request)``. The kernel (a
#: ``kernel.kernel.Kernel``) is ``Any`` here: this module sits below ``kernel.kernel``, which imports it.
Handler = Callable[[Any, "Process", Any], Awaitable[Any]]
AccessFn = Callable[[Any, "Process", Any], Sequence[Access]]


@dataclass(frozen=True)
class SyscallSpec:
    name: str
    request: type[BaseModel]
    handler: Handler
    access: AccessFn
    description: str = ""


SYSCALLS: dict[str, SyscallSpec] = {}


def syscall(name: str, request: type[BaseModel], *, access: AccessFn) -> Callable[[Handler], Handler]:
    """Register ``handler`` as syscall ``name``. Names are ``family.verb``; registering one twice is a bug."""
    family = name.split(".", 1)[0]
    if family not in SYSCALL_FAMILIES or "." not in name:
        raise ValueError(f"syscall name {name!r} must be one of {SYSCALL_FAMILIES}.<verb>")

    def register(handler: Handler) -> Handler:
        if name in SYSCALLS:
            raise ValueError(f"syscall {name!r} registered twice")
        SYSCALLS[name] = SyscallSpec(name, request, handler, access, (handler.__doc__ or "").strip().split("\n")[0])
        return handler

    return register


SYSCALL_FAMILIES = ("llm", "fs", "mem", "task", "tool", "proc")
