"""Processes: one per running agent, with state, accounting and an inbox for user input."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aios.api import Capabilities

__all__ = ["Accounting", "ProcState", "Process"]


class ProcState(StrEnum):
    READY = "ready"
    RUNNING = "running"
    WAITING_LLM = "waiting_llm"
    WAITING_TOOL = "waiting_tool"
    WAITING_APPROVAL = "waiting_approval"
    WAITING_INPUT = "waiting_input"
    SUSPENDED = "suspended"
    SWAPPED = "swapped"
    EXITED = "exited"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (ProcState.EXITED, ProcState.FAILED)


@dataclass
class Accounting:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    llm_wait_s: float = 0.0
    #: Time to first token of the most recent LLM call.
    ttft_s: float | None = None
    #: Mean time between tokens of the most recent LLM call.
    tbt_s: float | None = None
    queue_wait_s: float = 0.0
    prefill_computed: int = 0
    swaps: int = 0
    restores: int = 0
    recomputes: int = 0
    #: MCP tool calls this process made (``tool.call``, and each step of a ``tool.plan``).
    tool_calls: int = 0
    #: Wall seconds the process spent waiting on tools (overlapping calls of a plan counted once).
    tool_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Process:
    pid: int
    agent: str
    goal: str
    priority: str
    token_budget: int
    interactive: bool
    ppid: int = 0
    owner: str = "user"
    state: ProcState = ProcState.READY
    created_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    exit_code: int | None = None
    result: str | None = None
    error: str | None = None
    accounting: Accounting = field(default_factory=Accounting)
    turn_text: list[str] = field(default_factory=list)
    cancel_scope: anyio.CancelScope | None = None
    suspended: bool = False
    resume_state: ProcState = ProcState.RUNNING
    done: anyio.Event = field(default_factory=anyio.Event)
    #: The capability set in force (the manifest's, narrowed by config; never widened).
    caps: Capabilities = field(default_factory=Capabilities)
    #: Tool calls running now (a plan runs several at once) and when the first of them began.
    tools_in_flight: int = 0
    tool_wait_since: float = 0.0
    #: When the tool calls in flight are expected to end (perf_counter; 0: no estimate).
    tool_back_at: float = 0.0
    #: The number of this process's latest tool call (``ToolCallStarted.call``).
    tool_call_seq: int = 0
    #: The worker's OS pid when the agent runs in its own process (``kernel.worker``); None in-process.
    os_pid: int | None = None
    #: How the agent is confined: ``in-process``, ``process`` (own process, no Landlock), ``landlock-N``.
    confinement: str = "in-process"
    #: The worker's exit status as ``waitpid`` gave it (negative: killed by that signal).
    os_exit: int | None = None
    #: When the worker said hello, confined and about to import its plugin (``time.time()``).
    ready_at: float | None = None

    def __post_init__(self) -> None:
        self.inbox_send: MemoryObjectSendStream[str]
        self.inbox: MemoryObjectReceiveStream[str]
        self.inbox_send, self.inbox = anyio.create_memory_object_stream[str](math.inf)
        if not self.interactive:
            self.inbox_send.close()

    @property
    def alive(self) -> bool:
        return not self.state.terminal

    @property
    def budget_left(self) -> int | None:
        """Tokens left in the budget; None when unlimited."""
        if self.token_budget <= 0:
            return None
        return max(0, self.token_budget - self.accounting.tokens)

    def record(self, boot_id: str) -> dict[str, Any]:
        """The row persisted in the ``processes`` table."""
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "agent": self.agent,
            "owner": self.owner,
            "state": self.state.value,
            "priority": self.priority,
            "goal": self.goal,
            "created_at": self.created_at,
            "ended_at": self.ended_at,
            "exit_code": self.exit_code,
            "result": self.result,
            "error": self.error,
            "boot_id": boot_id,
            # Scalars only: a shallow copy (``asdict`` deep-copies, 20x slower; ps builds one per process).
            **vars(self.accounting),
        }

    @property
    def tokens_per_s(self) -> float | None:
        tbt = self.accounting.tbt_s
        return 1.0 / tbt if tbt else None

    def info(self) -> dict[str, Any]:
        """What front ends show (``aios ps --json``): the record plus live-only fields."""
        info = self.record("")
        info.pop("boot_id")
        info["interactive"] = self.interactive
        info["token_budget"] = self.token_budget
        info["tokens_per_s"] = self.tokens_per_s
        info["os_pid"] = self.os_pid
        info["confinement"] = self.confinement
        info["rss_kb"], info["cpu_s"] = os_usage(self.os_pid) if self.alive else (None, None)
        return info


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_KB = (os.sysconf("SC_PAGE_SIZE") // 1024) if hasattr(os, "sysconf") else 4


def os_usage(os_pid: int | None) -> tuple[int | None, float | None]:
    """Resident memory (KiB) and CPU time (user + system seconds) of a worker, from ``/proc``."""
    if os_pid is None:
        return None, None
    try:
        with open(f"/proc/{os_pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None, None
    # After the command name: state is field 3, utime 14, stime 15, rss (pages) 24 (1-based, see proc(5)).
    try:
        cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
        rss = int(fields[21]) * _PAGE_KB
    except (IndexError, ValueError):
        return None, None
    return rss, round(cpu, 3)
