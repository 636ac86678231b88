"""The public plugin API: what an agent is and what it may use, and how a plugin offers tools.

An agent is a class with a ``manifest`` and an ``async run(ctx, goal)``. Everything it does outside its own
memory goes through ``ctx``, whose methods are kernel syscalls (checked, accounted, audited). ``Context`` is
a protocol here; the kernel supplies the implementation, so this module imports nothing from the kernel.

A tool is a typed Python function (``@tool`` sets its name, description and side-effect hints); the kernel
serves a plugin's tools as one MCP server named after the plugin, so they are ``PLUGIN.tool`` in the catalog.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, TypedDict, TypeVar, overload, runtime_checkable

from aios.errors import first_problem

__all__ = [
    "LLM",
    "PRIORITIES",
    "Agent",
    "Capabilities",
    "ChatMessage",
    "Context",
    "Manifest",
    "PluginTool",
    "Priority",
    "tool",
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


# -- tools ----------------------------------------------------------------------------------------------

_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_DOC_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns|Raises|Yields|Examples?|Notes?):?\s*$")
_DOC_ARG = re.compile(r"^\s*\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")

F = TypeVar("F", bound=Callable[..., Any])


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring's description (before any ``Args:``-style section) and its per-parameter descriptions."""
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in doc.splitlines():
        rest = _REST_PARAM.match(line)
        if rest:
            current, section = rest.group(1), "rest"
            params[current] = rest.group(2).strip()
            continue
        head = _DOC_SECTION.match(line)
        if head:
            section, current = head.group(1).lower(), None
            continue
        if section is None:
            summary.append(line)
        elif section in ("args", "arguments", "parameters", "params"):
            arg = _DOC_ARG.match(line)
            if arg:
                current = arg.group(1)
                params[current] = arg.group(2).strip()
            elif current and line.strip():
                params[current] = f"{params[current]} {line.strip()}".strip()
        elif section == "rest" and current and line.strip() and not line.lstrip().startswith(":"):
            params[current] = f"{params[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), params


@dataclass(frozen=True, eq=False)
class PluginTool:
    """A tool a plugin provides: a typed function plus what MCP needs to know about it.

    The input schema comes from the signature (pydantic), parameter descriptions from the docstring's
    ``Args:`` section (or ``:param x:`` lines). Arguments are validated against it before the function runs.
    """

    fn: Callable[..., Any]
    name: str
    description: str = ""
    #: Reads only (no side effects); read-only tools are retried once after a failure in plans.
    read_only: bool = False
    #: May destroy or overwrite something (MCP's default for tools that are not read-only).
    destructive: bool = True
    #: Calling it twice with the same arguments does no more than once.
    idempotent: bool = False
    #: Reaches outside the machine (MCP's ``openWorldHint``).
    open_world: bool = True

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        read_only: bool = False,
        destructive: bool | None = None,
        idempotent: bool = False,
        open_world: bool = True,
    ) -> PluginTool:
        """Describe ``fn``; a signature that cannot be a tool (``*args``, positional-only) is a TypeError."""
        if not callable(fn):
            raise TypeError(f"a tool must be a function, not {type(fn).__name__}")
        tool_name: str = name or str(getattr(fn, "__name__", ""))
        if not _TOOL_NAME.match(tool_name):
            raise TypeError(f"tool name {tool_name!r} must match {_TOOL_NAME.pattern}")
        for param in inspect.signature(fn).parameters.values():
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise TypeError(f"tool {tool_name}: parameter {param.name!r} must be a named parameter")
        summary, _ = _parse_doc(inspect.getdoc(fn) or "")
        return cls(
            fn=fn,
            name=tool_name,
            description=(description if description is not None else summary).strip(),
            read_only=read_only,
            destructive=(not read_only) if destructive is None else destructive,
            idempotent=idempotent or read_only,
            open_world=open_world,
        )

    @classmethod
    def of(cls, obj: Any) -> PluginTool:
        """What ``register_tools`` may return: a ``PluginTool``, a ``@tool`` function or a plain typed function."""
        if isinstance(obj, PluginTool):
            return obj
        marked = getattr(obj, "__aios_tool__", None)
        if isinstance(marked, PluginTool):
            return marked
        return cls.from_function(obj)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    @cached_property
    def _arguments_model(self) -> Any:
        # pydantic is imported here, not at module level, so importing the plugin API stays cheap.
        import typing

        from pydantic import ConfigDict, Field, create_model

        hints = typing.get_type_hints(self.fn, include_extras=True)
        _, docs = _parse_doc(inspect.getdoc(self.fn) or "")
        fields: dict[str, Any] = {}
        for param in inspect.signature(self.fn).parameters.values():
            default = ... if param.default is param.empty else param.default
            # Field names are prefixed so parameters such as ``schema`` or ``copy`` cannot shadow BaseModel's.
            fields[f"p_{param.name}"] = (
                hints.get(param.name, Any),
                Field(default, alias=param.name, description=docs.get(param.name)),
            )
        return create_model(f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments (a TypeError if a parameter's type has none)."""
        try:
            schema: dict[str, Any] = self._arguments_model.model_json_schema()
        except Exception as exc:
            raise TypeError(f"tool {self.name}: no JSON schema for its parameters: {exc}") from exc
        schema.pop("title", None)
        return schema

    def arguments(self, given: dict[str, Any]) -> dict[str, Any]:
        """Validate ``given`` against the signature; keyword arguments for ``fn`` (a ValueError says why not)."""
        from pydantic import ValidationError

        try:
            model = self._arguments_model.model_validate(given)
        except ValidationError as exc:
            raise ValueError(first_problem(exc, "arguments")) from None
        return {name: getattr(model, f"p_{name}") for name in inspect.signature(self.fn).parameters}


@overload
def tool(fn: F, /) -> F: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    destructive: bool | None = None,
    idempotent: bool = False,
    open_world: bool = True,
) -> Callable[[F], F]: ...


def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    read_only: bool = False,
    destructive: bool | None = None,
    idempotent: bool = False,
    open_world: bool = True,
) -> Any:
    """Mark a typed function as a tool; return it from a ``register_tools`` hook.

    The function stays an ordinary function (call it in tests as usual). Its name is the tool's name unless
    ``name`` is given, its docstring the description, its signature the input schema. ``read_only`` tools
    have no side effects (and are retried once in plans); anything else is treated as destructive unless
    ``destructive=False``. Sync functions run in a worker thread, async ones on the kernel's event loop.
    """

    def mark(f: F) -> F:
        f.__aios_tool__ = PluginTool.from_function(  # type: ignore[attr-defined]
            f,
            name=name,
            description=description,
            read_only=read_only,
            destructive=destructive,
            idempotent=idempotent,
            open_world=open_world,
        )
        return f

    return mark(fn) if fn is not None else mark
