"""The public plugin API: what an agent is and what it may use, and how a plugin offers tools.

An agent is a class with a ``manifest`` and an ``async run(ctx, goal)``. Everything it does outside its own
memory goes through ``ctx``, whose methods are kernel syscalls (checked, accounted, audited). ``Context`` is
a protocol here; the kernel supplies the implementation, so this module imports nothing from the kernel.

A tool is a typed Python function (``@tool`` sets its name, description and side-effect hints); the kernel
serves a plugin's tools as one MCP server named after the plugin, so they are ``PLUGIN.tool`` in the catalog.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Protocol, TypedDict, TypeVar, cast, overload, runtime_checkable

from aios.errors import first_problem

__all__ = [
    "LLM",
    "PRIORITIES",
    "Agent",
    "Capabilities",
    "ChatMessage",
    "Context",
    "Files",
    "LLMHelpers",
    "Manifest",
    "Memory",
    "PluginTool",
    "Priority",
    "SyscallContext",
    "Tasks",
    "Tools",
    "as_context",
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
    """What an agent is: its name (``aios run NAME``), a one-line description, the capabilities it asks for
    (shown to the user for approval, enforced by the kernel), its default priority, and whether it keeps
    talking with the user after its goal."""

    name: str
    description: str = ""
    capabilities: Capabilities = field(default_factory=Capabilities)
    priority: Priority = "normal"
    #: An interactive agent keeps reading user input after its goal (a chat); others exit when ``run`` returns.
    interactive: bool = False


@runtime_checkable
class LLM(Protocol):
    """The ``llm.*`` syscalls as seen by an agent: ``chat`` streams; the rest are built on it (``LLMHelpers``)."""

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

    async def complete(
        self, prompt: str, *, system: str | None = None, max_tokens: int | None = None, stop: Sequence[str] = ()
    ) -> str:
        """The whole reply to one user message, as text."""
        ...

    async def json(
        self,
        prompt: str | Sequence[ChatMessage],
        schema: dict[str, Any],
        *,
        system: str | None = None,
        max_tokens: int = 256,
    ) -> Any:
        """A value matching ``schema`` (grammar-constrained, greedy); ``ModelError`` if it does not parse."""
        ...

    async def choose(self, prompt: str, options: Sequence[str], *, system: str | None = None) -> str:
        """One of ``options``, picked by the model under an enum grammar."""
        ...


@runtime_checkable
class Context(Protocol):
    """What a running agent is given. Every method is a syscall into the kernel (see ``SyscallContext``)."""

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

    @property
    def fs(self) -> Files: ...

    @property
    def memory(self) -> Memory: ...

    @property
    def tasks(self) -> Tasks: ...

    @property
    def tools(self) -> Tools: ...

    @property
    def log(self) -> logging.Logger:
        """A logger named after the agent (``aios.agent.NAME``): the kernel log, never the user's console."""
        ...

    async def write(self, text: str) -> None:
        """Append ``text`` to the agent's output (its console in the TUI, stdout for `aios run`)."""
        ...

    async def end_turn(self) -> None:
        """Mark the end of one reply, so front ends can finish the current message."""
        ...

    async def input(self) -> str | None:
        """Wait for the next message the user sends this agent; ``None`` once no more will come."""
        ...

    async def ask_user(self, question: str) -> str | None:
        """Ask the user ``question`` and wait for the answer (``None`` when nobody can answer)."""
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

    async def kill(self, pid: int) -> None:
        """End one of this agent's children (``proc.kill``)."""
        ...

    async def request(
        self, *, path: str | None = None, tool: str | None = None, write: bool = False, reason: str = ""
    ) -> bool:
        """Ask the user for access it does not hold (a folder or file, or one tool) through the approval flow
        (``proc.request``); whether it was granted (for the rest of this process)."""
        ...


class LLMHelpers:
    """``complete``, ``json`` and ``choose`` over ``chat``: mixed into every implementation of ``LLM``."""

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
        raise NotImplementedError

    async def complete(
        self, prompt: str, *, system: str | None = None, max_tokens: int | None = None, stop: Sequence[str] = ()
    ) -> str:
        messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        pieces = [p async for p in self.chat(messages, max_tokens=max_tokens, stop=stop)]
        return "".join(pieces).strip()

    async def json(
        self,
        prompt: str | Sequence[ChatMessage],
        schema: dict[str, Any],
        *,
        system: str | None = None,
        max_tokens: int = 256,
    ) -> Any:
        import json as _json

        from aios.errors import ModelError

        if isinstance(prompt, str):
            messages: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
            messages.append({"role": "user", "content": prompt})
        else:
            messages = list(prompt)
        raw = "".join(
            [p async for p in self.chat(messages, json_schema=schema, max_tokens=max_tokens, temperature=0.0)]
        )
        try:
            return _json.loads(raw, strict=False)
        except ValueError as exc:
            raise ModelError(f"the model's answer is not JSON ({exc}): {raw[:120]!r}") from None

    async def choose(self, prompt: str, options: Sequence[str], *, system: str | None = None) -> str:
        choices = list(dict.fromkeys(str(o) for o in options))
        if not choices:
            raise ValueError("choose needs at least one option")
        if len(choices) == 1:
            return choices[0]
        schema = {
            "type": "object",
            "properties": {"choice": {"enum": choices}},
            "required": ["choice"],
            "additionalProperties": False,
        }
        listing = "\n".join(f"- {c}" for c in choices)
        got = await self.json(f"{prompt}\n\nOptions:\n{listing}", schema, system=system, max_tokens=64)
        choice = got.get("choice") if isinstance(got, dict) else None
        if choice not in choices:
            from aios.errors import ModelError

            raise ModelError(f"the model chose none of the options: {got!r}")
        return str(choice)


class _Facade:
    def __init__(self, ctx: _Caller) -> None:
        self._ctx = ctx

    async def _call(self, syscall: str, **payload: Any) -> Any:
        return await self._ctx.call(syscall, **{k: v for k, v in payload.items() if v is not None})


class _Caller(Protocol):
    async def call(self, syscall: str, **payload: Any) -> Any: ...


class Files(_Facade):
    """``ctx.fs``: the semantic file system (``fs.*`` syscalls), confined to the agent's file grants."""

    async def search(self, query: str, *, k: int = 10, **filters: Any) -> list[dict[str, Any]]:
        """Best chunk per file, best first (filters: ``mount``, ``glob``, ``type``, ``since``, ``view``, ``mode``)."""
        return list((await self._call("fs.search", query=query, k=k, **filters))["results"])

    async def ls(self, target: str | None = None) -> list[dict[str, Any]]:
        """Files of a mount, a folder in one, or a view (``@VIEW``)."""
        return list((await self._call("fs.ls", target=target))["files"])

    async def read(self, path: str, version: int | None = None) -> str:
        return str((await self._call("fs.cat", path=path, version=version))["text"])

    async def write(self, path: str, text: str) -> str:
        return str((await self._call("fs.write", path=path, text=text))["outcome"])

    async def history(self, path: str) -> list[dict[str, Any]]:
        return list((await self._call("fs.history", path=path))["versions"])

    async def rollback(self, path: str, *, steps: int | None = None, at: float | str | None = None) -> dict[str, Any]:
        return dict(await self._call("fs.rollback", path=path, steps=steps, at=at))

    async def summarize(self, target: str) -> str:
        """An LLM summary of a file or a view (``@VIEW``), cached by content hash."""
        return str((await self._call("fs.summarize", target=target))["summary"])


class Memory(_Facade):
    """``ctx.memory``: the agent's memory namespace (``mem.*``): core blocks, recall and archival search."""

    async def core(self, namespace: str | None = None) -> dict[str, Any]:
        """Core blocks as applied, staged edits, and ``rendered`` (the text to put in a prompt)."""
        return dict(await self._call("mem.core_get", namespace=namespace))

    async def set_core(self, label: str, value: str, *, limit: int | None = None) -> dict[str, Any]:
        return dict(await self._call("mem.core_set", label=label, value=value, limit=limit))

    async def delete_core(self, label: str) -> dict[str, Any]:
        return dict(await self._call("mem.core_delete", label=label))

    async def archive(self, text: str, *, tags: Sequence[str] = ()) -> dict[str, Any]:
        return dict(await self._call("mem.archive", text=text, tags=list(tags)))

    async def search(self, query: str, *, limit: int = 10, namespace: str | None = None) -> list[dict[str, Any]]:
        found = await self._call("mem.search", query=query, limit=limit, namespace=namespace)
        return list(found["results"] if isinstance(found, dict) else found)

    async def get(self, item: str) -> dict[str, Any]:
        return dict(await self._call("mem.get", item=item))

    async def forget(self, item: str) -> dict[str, Any]:
        return dict(await self._call("mem.forget", item=item))


class Tasks(_Facade):
    """``ctx.tasks``: task-memory trees (``task.*``): steps with versions, dependencies and prompt slices."""

    async def create(self, title: str, input: str = "") -> dict[str, Any]:
        return dict(await self._call("task.create", title=title, input=input))

    async def get(self, tree: int) -> dict[str, Any]:
        return dict(await self._call("task.get", tree=tree))

    async def add(self, tree: int, title: str, *, output: str = "", **fields: Any) -> dict[str, Any]:
        """A new step (``parent``, ``input``, ``status``, ``depends_on``, ``activate`` as keywords)."""
        return dict(await self._call("task.add", tree=tree, title=title, output=output, **fields))

    async def update(self, tree: int, node: int, **changes: Any) -> dict[str, Any]:
        """A new version of a step (``title``, ``input``, ``output``, ``status``); dependents need a re-check."""
        return dict(await self._call("task.update", tree=tree, node=node, **changes))

    async def supersede(self, tree: int, node: int) -> dict[str, Any]:
        return dict(await self._call("task.supersede", tree=tree, node=node))

    async def rollback(self, tree: int, node: int, version: int) -> dict[str, Any]:
        return dict(await self._call("task.rollback", tree=tree, node=node, version=version))

    async def prompt(self, tree: int, node: int | None = None, *, budget: int = 600) -> str:
        """The task slice for ``node`` (default the active step) within ``budget`` tokens."""
        return str((await self._call("task.prompt", tree=tree, node=node, budget=budget))["text"])

    async def classify(self, tree: int, message: str) -> dict[str, Any]:
        """Which kind of turn ``message`` is (new_step, update, question) and which step it is about."""
        return dict(await self._call("task.classify", tree=tree, message=message))

    async def file(self, tree: int, message: str) -> dict[str, Any]:
        """Classify ``message`` and file it into the tree; ``about`` is the step a reply should be about."""
        return dict(await self._call("task.classify", tree=tree, message=message, apply=True))


class Tools(_Facade):
    """``ctx.tools``: MCP tools (``tool.*``), each call checked against the agent's tool grants."""

    async def list(self, *, schemas: bool = False) -> builtins.list[dict[str, Any]]:
        return builtins.list((await self._call("tool.list", schemas=schemas))["tools"])

    async def search(self, query: str, *, limit: int = 8) -> builtins.list[dict[str, Any]]:
        """Tools ranked for a task description (keyword + embeddings), with their input schemas."""
        return builtins.list((await self._call("tool.search", query=query, limit=limit))["tools"])

    async def call(
        self, tool: str, args: dict[str, Any] | None = None, *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """``await ctx.tools.call("git.git_log", {"repo_path": "."})``: a result value (check ``is_error``)."""
        return dict(await self._call("tool.call", tool=tool, args=args or {}, timeout_s=timeout_s))

    async def plan(self, steps: builtins.list[dict[str, Any]], *, timeout_s: float | None = None) -> dict[str, Any]:
        """Run a plan (steps with ``${id.path}`` references) in parallel; results per step."""
        return dict(await self._call("tool.plan", steps=steps, timeout_s=timeout_s))

    async def propose(self, goal: str, *, candidates: int = 3, feedback: str = "") -> dict[str, Any]:
        """A plan for ``goal`` written by the model under a grammar over a few candidate tools (not run)."""
        return dict(await self._call("tool.propose", goal=goal, candidates=candidates, feedback=feedback or None))


class SyscallContext:
    """The parts of ``Context`` built on ``call`` alone, mixed into every implementation (in-process or not):
    ``fs``, ``memory``, ``tasks``, ``tools``, ``spawn``/``wait``/``kill``, ``ask_user`` and ``log``."""

    async def call(self, syscall: str, **payload: Any) -> Any:
        raise NotImplementedError

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def interactive(self) -> bool:
        raise NotImplementedError

    @property
    def llm(self) -> LLMHelpers:
        raise NotImplementedError

    async def write(self, text: str) -> None:
        raise NotImplementedError

    async def end_turn(self) -> None:
        raise NotImplementedError

    async def input(self) -> str | None:
        raise NotImplementedError

    @property
    def fs(self) -> Files:
        return Files(self)

    @property
    def memory(self) -> Memory:
        return Memory(self)

    @property
    def tasks(self) -> Tasks:
        return Tasks(self)

    @property
    def tools(self) -> Tools:
        return Tools(self)

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"aios.agent.{self.name}")

    async def ask_user(self, question: str) -> str | None:
        if not self.interactive:
            return None
        await self.write(question.rstrip() + "\n")
        await self.end_turn()
        return await self.input()

    async def spawn(self, agent: str, goal: str = "", *, caps: dict[str, Any] | None = None) -> int:
        return int((await self.call("proc.spawn", agent=agent, goal=goal, **({"caps": caps} if caps else {})))["pid"])

    async def wait(self, pid: int) -> dict[str, Any]:
        return dict(await self.call("proc.wait", pid=pid))

    async def kill(self, pid: int) -> None:
        await self.call("proc.kill", pid=pid)

    async def request(
        self, *, path: str | None = None, tool: str | None = None, write: bool = False, reason: str = ""
    ) -> bool:
        if (path is None) == (tool is None):
            raise ValueError("request exactly one of path= or tool=")
        kind, target = ("file", path) if path is not None else ("tool", tool)
        answer = await self.call("proc.request", kind=kind, target=target, write=write, reason=reason)
        return bool(answer["granted"])


class _LLMAdapter(LLMHelpers):
    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncIterator[str]:
        result: AsyncIterator[str] = self._raw.chat(messages, **kwargs)
        return result


class _ContextAdapter(SyscallContext):
    """The whole ``Context`` over a runner's context that implements only the primitives (``call``, ``write``,
    ``end_turn``, ``input``, ``llm.chat``, ``pid``, ``name``, ``interactive``)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        llm = raw.llm
        self._llm = llm if isinstance(llm, LLMHelpers) else _LLMAdapter(llm)

    @property
    def pid(self) -> int:
        return int(self._raw.pid)

    @property
    def name(self) -> str:
        return str(self._raw.name)

    @property
    def interactive(self) -> bool:
        return bool(self._raw.interactive)

    @property
    def llm(self) -> LLMHelpers:
        return self._llm

    async def call(self, syscall: str, **payload: Any) -> Any:
        return await self._raw.call(syscall, **payload)

    async def write(self, text: str) -> None:
        await self._raw.write(text)

    async def end_turn(self) -> None:
        await self._raw.end_turn()

    async def input(self) -> str | None:
        result: str | None = await self._raw.input()
        return result


def as_context(ctx: Any) -> Context:
    """``ctx`` as the full ``Context``: itself when it already is one, else adapted from its primitives."""
    if isinstance(ctx, SyscallContext) and isinstance(ctx.llm, LLMHelpers):
        return cast(Context, ctx)
    return cast(Context, _ContextAdapter(ctx))


class Agent:
    """Base class for agents. Subclasses set ``manifest`` and implement ``run``.

    Whatever runs the agent (the kernel in-process, a confined worker process, a test) passes a context that
    ``run`` receives as the full ``Context`` (``as_context``), so the SDK is the same everywhere.
    """

    manifest: ClassVar[Manifest]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if inspect.iscoroutinefunction(run) and not getattr(run, "__aios_adapted__", False):

            @functools.wraps(run)
            async def adapted(self: Agent, ctx: Any, goal: str) -> str | None:
                result: str | None = await run(self, as_context(ctx), goal)
                return result

            adapted.__aios_adapted__ = True  # type: ignore[attr-defined]
            cls.run = adapted  # type: ignore[method-assign]

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
