"""The public plugin API: what an agent is and what it may use.

An agent is a class with a ``manifest`` and an ``async run(ctx, goal)``. Everything it does outside its own
memory goes through ``ctx``, whose methods are kernel syscalls (checked, accounted, audited). ``Context`` is
a protocol here; the kernel supplies the implementation, so this module imports nothing from the kernel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypedDict, runtime_checkable

__all__ = [
    "LLM",
    "PRIORITIES",
    "Agent",
    "Capabilities",
    "ChatMessage",
    "Context",
    "Manifest",
    "Priority",
]

Priority = Literal["realtime", "high", "normal", "background"]
PRIORITIES: tuple[Priority, ...] = ("realtime", "high", "normal", "background")


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Capabilities:
    """What an agent asks for. The user's config may narrow it; it is never widened at run time.

    Everything not granted is denied. ``llm_token_budget`` counts prompt and generated tokens together;
    ``None`` takes the kernel default. Tool patterns are globs over ``server.tool`` (``fs.*``, ``git.git_log``);
    a call matching ``tools_deny`` is refused, ``tools_ask`` asks the user, ``tools`` allows. File grants are
    subtrees (``~/notes``, ``/srv/data``); write implies read. Memory namespaces are names or globs; an agent
    always owns its own namespace (``agent:<name>``) and its own task trees.
    """

    llm_token_budget: int | None = None
    max_priority: Priority = "normal"
    #: Model names (globs) the agent may use; the default model is ``"*"``-matched.
    models: tuple[str, ...] = ("*",)
    tools: tuple[str, ...] = ()
    tools_ask: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_write: tuple[str, ...] = ()
    memory_read: tuple[str, ...] = ()
    memory_write: tuple[str, ...] = ()
    #: Children this agent may spawn (each gets at most this agent's capabilities).
    max_children: int = 0
    #: May call tools that declare network egress.
    network: bool = False
    #: Tools (globs) whose path-like arguments (``path``, ``paths``, ``file``, ``directory``, ``source``,
    #: ``destination``...) must be absolute paths inside ``files_read``/``files_write`` (write for tools with
    #: side effects): argument constraints for file-serving tools.
    tool_arg_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    priority: Priority = "normal"
    #: An interactive agent keeps reading user input after its goal (a chat); others exit when ``run`` returns.
    interactive: bool = False


@runtime_checkable
class LLM(Protocol):
    """The ``llm.*`` syscalls as seen by an agent."""

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        json_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        """Stream the reply to ``messages`` as text pieces (constrained to ``json_schema`` if given)."""
        ...


@runtime_checkable
class Context(Protocol):
    """What a running agent is given. Every method is a syscall into the kernel."""

    @property
    def pid(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def interactive(self) -> bool:
        """Whether the user can keep talking to this process after its goal (False for `aios run`)."""
        ...

    @property
    def llm(self) -> LLM: ...

    async def write(self, text: str) -> None:
        """Append ``text`` to the agent's output (its console in the TUI, stdout for `aios run`)."""
        ...

    async def end_turn(self) -> None:
        """Mark the end of one reply, so front ends can finish the current message."""
        ...

    async def input(self) -> str | None:
        """Wait for the next message the user sends this agent; ``None`` once no more will come."""
        ...

    async def call(self, syscall: str, **payload: Any) -> Any:
        """Make a syscall by name (``fs.search``, ``mem.core_get``, ``tool.call``…); checked and audited."""
        ...

    async def spawn(self, agent: str, goal: str = "", *, caps: dict[str, Any] | None = None) -> int:
        """Start a child agent with at most this agent's capabilities (``proc.spawn``); its pid."""
        ...

    async def wait(self, pid: int) -> dict[str, Any]:
        """Wait for a child to end (``proc.wait``); its final process-table entry."""
        ...


class Agent:
    """Base class for agents. Subclasses set ``manifest`` and implement ``run``."""

    manifest: ClassVar[Manifest]

    async def run(self, ctx: Context, goal: str) -> str | None:
        """Do the work. The return value is the process's result (shown by `aios ps`/`wait`)."""
        raise NotImplementedError
