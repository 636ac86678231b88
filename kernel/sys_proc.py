"""``proc.*`` syscalls an agent makes about processes: itself and its own children.

A child's capabilities are always a subset of its parent's (``attenuate``): what the child's manifest asks
for, narrowed by the user's config, narrowed by everything the parent has, narrowed again by whatever the
parent passes in ``caps``. A parent may spawn at most ``max_children`` live children, and may wait for,
signal and kill only its own children.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from aios.api import PRIORITIES, Capabilities, Priority
from aios.errors import PermissionDenied
from kernel.access import attenuate
from kernel.syscalls import Access, Request, syscall

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

_NAME = Field(min_length=1, max_length=128)
_GLOBS = Field(default=None, max_length=256)


class ProcSelfRequest(Request):
    pass


class CapsRequest(Request):
    """Further narrowing a parent asks for its child; keys left out narrow nothing (the parent's bound holds)."""

    tools: list[str] | None = _GLOBS
    tools_ask: list[str] | None = _GLOBS
    tools_deny: list[str] | None = _GLOBS
    files_read: list[str] | None = _GLOBS
    files_write: list[str] | None = _GLOBS
    memory_read: list[str] | None = _GLOBS
    memory_write: list[str] | None = _GLOBS
    models: list[str] | None = _GLOBS
    max_children: int | None = Field(None, ge=0)
    network: bool | None = None
    llm_token_budget: int | None = Field(None, ge=0)
    tool_arg_paths: list[str] | None = _GLOBS


class ProcSpawnRequest(Request):
    agent: str = _NAME
    goal: str = Field("", max_length=1_000_000)
    priority: Priority | None = None
    caps: CapsRequest | None = None


class ProcTargetRequest(Request):
    pid: int = Field(ge=1)


class ProcSignalRequest(Request):
    pid: int = Field(ge=1)
    #: stop = suspend, cont = resume, term/kill = kill.
    signal: Literal["stop", "cont", "term", "kill"]


@syscall("proc.self", ProcSelfRequest, access=lambda k, p, r: [])
async def proc_self(kernel: Kernel, proc: Process, request: ProcSelfRequest) -> dict[str, Any]:
    """This process's own entry in the process table."""
    return kernel.info(proc.pid)


def _child_caps(parent: Process, request: ProcSpawnRequest) -> Capabilities:
    bound = parent.caps
    left = parent.budget_left
    if left == 0:
        raise PermissionDenied(f"proc.spawn by pid {parent.pid} ({parent.agent}): token budget used up")
    if left is not None:  # a child cannot outspend what its parent has left
        budget = left if bound.llm_token_budget is None else min(left, bound.llm_token_budget)
        bound = attenuate(bound, Capabilities(**{**_top_fields(), "llm_token_budget": budget}))
    if request.caps is not None:
        asked = {k: (tuple(v) if isinstance(v, list) else v) for k, v in request.caps.model_dump().items()}
        bound = attenuate(bound, Capabilities(**{**_top_fields(), **{k: v for k, v in asked.items() if v is not None}}))
    return bound


def _top_fields() -> dict[str, Any]:
    from kernel.access import TOP

    return {f: getattr(TOP, f) for f in TOP.__dataclass_fields__}


@syscall("proc.spawn", ProcSpawnRequest, access=lambda k, p, r: [Access("proc", f"spawn:{r.agent}", write=True)])
async def proc_spawn(kernel: Kernel, proc: Process, request: ProcSpawnRequest) -> dict[str, Any]:
    """Start a child agent with at most this process's capabilities."""
    priority = request.priority
    if priority is not None and PRIORITIES.index(priority) < PRIORITIES.index(proc.caps.max_priority):
        priority = proc.caps.max_priority
    pid = await kernel.spawn(
        request.agent,
        request.goal,
        interactive=False,
        priority=priority or proc.priority,
        ppid=proc.pid,
        owner=f"pid:{proc.pid}",
        caps=_child_caps(proc, request),
    )
    return {"pid": pid}


def _target(k: Kernel, p: Process, r: ProcTargetRequest | ProcSignalRequest) -> list[Access]:
    return [Access("proc", str(r.pid), write=not isinstance(r, ProcTargetRequest))]


@syscall("proc.wait", ProcTargetRequest, access=_target)
async def proc_wait(kernel: Kernel, proc: Process, request: ProcTargetRequest) -> dict[str, Any]:
    """Wait for one of this process's children to end; its final process-table entry."""
    return await kernel.wait(request.pid)


@syscall("proc.kill", ProcTargetRequest, access=lambda k, p, r: [Access("proc", str(r.pid), write=True)])
async def proc_kill(kernel: Kernel, proc: Process, request: ProcTargetRequest) -> dict[str, Any]:
    """Kill one of this process's children."""
    await kernel.kill(request.pid)
    return {"pid": request.pid}


@syscall("proc.signal", ProcSignalRequest, access=_target)
async def proc_signal(kernel: Kernel, proc: Process, request: ProcSignalRequest) -> dict[str, Any]:
    """Suspend (stop), resume (cont) or kill (term, kill) one of this process's children."""
    if request.signal == "stop":
        await kernel.suspend(request.pid)
    elif request.signal == "cont":
        await kernel.resume(request.pid)
    else:
        await kernel.kill(request.pid)
    return {"pid": request.pid, "signal": request.signal}


@syscall("proc.children", ProcSelfRequest, access=lambda k, p, r: [])
async def proc_children(kernel: Kernel, proc: Process, request: ProcSelfRequest) -> list[dict[str, Any]]:
    """This process's children (alive or not)."""
    return [info for info in kernel.ps() if info["ppid"] == proc.pid]


@syscall("proc.exit", ProcSelfRequest, access=lambda k, p, r: [])
async def proc_exit(kernel: Kernel, proc: Process, request: ProcSelfRequest) -> dict[str, Any]:
    """End this process's input: an interactive agent (or an ``ExternalAgent`` held for another program)
    finishes, and its token dies with it."""
    await kernel.close_input(proc.pid)
    return {"pid": proc.pid}
