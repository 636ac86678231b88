"""Access control: decides every ``Access`` a syscall makes against the caller's capability set.

This is the seam issue 5 fills in (approvals, config narrowing, persisted "always" decisions, tool argument
constraints). The decision rules here are already deny-by-default.
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Literal

from aios.api import Capabilities
from aios.errors import PermissionDenied
from kernel.fs_guard import FileGrant, PathDenied, confine
from kernel.syscalls import Access

if TYPE_CHECKING:
    from kernel.process import Process

__all__ = ["AccessGuard", "Decision", "own_namespace"]

Decision = Literal["allow", "ask", "deny"]


def own_namespace(agent: str) -> str:
    return f"agent:{agent}"


def _matches(patterns: tuple[str, ...], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class AccessGuard:
    """Pure decisions: ``decide`` returns allow/ask/deny with a reason; the kernel acts on them."""

    def decide(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        kind = access.kind
        if kind == "tool":
            if _matches(caps.tools_deny, access.target):
                return "deny", f"tool {access.target} is denied"
            if _matches(caps.tools_ask, access.target):
                return "ask", f"tool {access.target} needs approval"
            if _matches(caps.tools, access.target):
                return "allow", ""
            return "deny", f"tool {access.target} not granted"
        if kind == "file":
            grants = [FileGrant.of(r) for r in caps.files_read] + [FileGrant.of(r, write=True) for r in caps.files_write]
            try:
                confine(grants, access.target, write=access.write)
            except PathDenied as exc:
                return "deny", exc.message
            return "allow", ""
        if kind == "memory":
            if access.target == own_namespace(proc.agent):
                return "allow", ""
            patterns = caps.memory_write if access.write else caps.memory_read + caps.memory_write
            if _matches(patterns, access.target):
                return "allow", ""
            verb = "write" if access.write else "read"
            return "deny", f"memory namespace {access.target} not granted for {verb}"
        if kind == "task":
            return "allow", ""  # a process's own task trees; issue 5 narrows foreign trees
        if kind == "llm":
            return ("allow", "") if _matches(caps.models, access.target) else ("deny", f"model {access.target} not granted")
        if kind == "net":
            return ("allow", "") if caps.network else ("deny", "network egress not granted")
        if kind == "proc":
            return "allow", ""
        return "deny", f"unknown resource kind {kind}"

    def check(self, proc: Process, caps: Capabilities, access: Access) -> None:
        decision, reason = self.decide(proc, caps, access)
        if decision != "allow":
            raise PermissionDenied(f"pid {proc.pid} ({proc.agent}): {reason or 'denied'}")
