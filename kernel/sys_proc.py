"""``proc.*`` syscalls an agent makes about processes: itself and its own children.

A child's capabilities are always a subset of its parent's (``attenuate``): what the child's manifest asks
for, narrowed by the user's config, narrowed by everything the parent has, narrowed again by whatever the
parent passes in ``caps``. A parent may spawn at most ``max_children`` live children, and may wait for,
signal and kill only its own children.
"""

from __future__ import annotations

import logging
from collections import deque
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


# -- what front ends show about the kernel itself (the TUI's engine panel and Logs mode) ---------------------


class _LogTail(logging.Handler):
    """The last warnings and errors logged by the kernel and its services (``proc.log``)."""

    def __init__(self, size: int = 500) -> None:
        super().__init__(level=logging.WARNING)
        self.records: deque[dict[str, Any]] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        self.records.append(
            {"time": record.created, "level": record.levelname, "logger": record.name, "message": message}
        )


LOG_TAIL = _LogTail()
for _name in ("kernel", "memory", "tools", "aios"):
    logging.getLogger(_name).addHandler(LOG_TAIL)


class EngineRequest(Request):
    pass


class AuditRequest(Request):
    agent: str | None = Field(None, min_length=1, max_length=128)
    syscall: str | None = Field(None, min_length=1, max_length=64)
    decision: Literal["allow", "deny", "ask"] | None = None
    limit: int = Field(200, ge=1, le=5000)


class LogRequest(Request):
    limit: int = Field(200, ge=1, le=500)


def _user_only(proc: Process, name: str) -> None:
    if proc.pid != 0:
        raise PermissionDenied(f"{name} by pid {proc.pid} ({proc.agent}): only the user reads the kernel's records")


@syscall("proc.engine", EngineRequest, access=lambda k, p, r: [])
async def proc_engine(kernel: Kernel, proc: Process, request: EngineRequest) -> dict[str, Any]:
    """The shared engine's state: model, batch width, contexts by residency, KV tokens held, swaps and
    restores, tokens per second summed over the running processes."""
    engine = kernel.engine
    contexts = list(engine.context_info.values())
    residency: dict[str, int] = {}
    for info in contexts:
        residency[str(info.get("residency", "none"))] = residency.get(str(info.get("residency", "none")), 0) + 1
    scheduler = getattr(engine, "scheduler", None)
    return {
        "model": str(engine.model_name),
        "max_batch": getattr(scheduler, "max_batch", None) or getattr(engine, "max_concurrency", None),
        "running": sum(1 for info in kernel.ps() if info["state"] == "waiting_llm"),
        "steps": int(getattr(engine, "steps", 0)),
        "batch_tokens": int(getattr(engine, "batch_tokens", 0)),
        "contexts": residency,
        "kv_tokens": sum(
            int(info.get("context_tokens") or 0) for info in contexts if info.get("residency") == "resident"
        ),
        "swaps": sum(int(info.get("swaps") or 0) for info in contexts),
        "restores": sum(int(info.get("restores") or 0) for info in contexts),
        "tokens_per_s": round(sum(float(info.get("tokens_per_s") or 0) for info in kernel.ps()), 2),
    }


@syscall("proc.audit", AuditRequest, access=lambda k, p, r: [])
async def proc_audit(kernel: Kernel, proc: Process, request: AuditRequest) -> list[dict[str, Any]]:
    """The latest audit rows, oldest first, filtered by agent, syscall and decision (the user only)."""
    from kernel.blocking import run_blocking

    _user_only(proc, "proc.audit")

    def read() -> list[dict[str, Any]]:
        kernel.audit.flush()
        rows = kernel.store.audit_rows(agent=request.agent, denied_only=request.decision == "deny", limit=5000)
        rows = [
            r for r in rows if request.syscall in (None, r["syscall"]) and request.decision in (None, r["decision"])
        ]
        return rows[-request.limit :]

    return await run_blocking(read, pool="db")


@syscall("proc.log", LogRequest, access=lambda k, p, r: [])
async def proc_log(kernel: Kernel, proc: Process, request: LogRequest) -> list[dict[str, Any]]:
    """The kernel log's latest warnings and errors, oldest first (the user only)."""
    _user_only(proc, "proc.log")
    return list(LOG_TAIL.records)[-request.limit :]
