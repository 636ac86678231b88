"""Access control: decides every ``Access`` a syscall makes against the caller's capability set.

Deny by default. The guard is pure: ``decide`` returns allow/ask/deny with a reason and the kernel acts on it
(an ``ask`` suspends the caller until the user answers, see kernel.approvals). Decisions the user made
"always" (kernel.policy) turn an ``ask`` into allow or deny; they never widen what a manifest grants.

``attenuate`` intersects two capability sets. It is how the user's config narrows a manifest and how a
child gets at most what its parent has.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from aios.api import PRIORITIES, Capabilities
from aios.confined import FileGrant, PathDenied, confine
from aios.errors import PermissionDenied
from kernel.globs import globs_intersect, globs_may_overlap, matches_any
from kernel.syscalls import Access

if TYPE_CHECKING:
    from kernel.process import Process

__all__ = [
    "TOP",
    "AccessGuard",
    "Decision",
    "RememberedDecisions",
    "attenuate",
    "file_grants",
    "own_namespace",
    "resource_key",
]

Decision = Literal["allow", "ask", "deny"]


class RememberedDecisions(Protocol):
    """The user's "always" answers, as the guard reads them (``kernel.policy.PolicyStore``)."""

    def lookup(self, agent: str, resource: str) -> Literal["allow", "deny"] | None: ...


#: The guard's policy store: ``AccessGuard(policy=PolicyStore())`` is an ``AccessGuard[PolicyStore]``, so its
#: owner sees the whole store (``remember``, ``rules``, ``revoke``) while the guard needs only ``lookup``.
P = TypeVar("P", bound=RememberedDecisions)

#: The widest capability set: the identity of ``attenuate`` (config narrowing that narrows nothing).
TOP = Capabilities(
    llm_token_budget=None,
    max_priority="realtime",
    models=("*",),
    tools=("*",),
    files_read=("/",),
    files_write=("/",),
    memory_read=("*",),
    memory_write=("*",),
    max_children=1_000_000,
    network=True,
)


#: Tool argument names treated as paths where ``tool_arg_paths`` applies.
PATH_ARGS = frozenset(
    {"path", "paths", "file", "files", "filename", "directory", "dir", "source", "destination", "src", "dst"}
)


@lru_cache(maxsize=1024)
def file_grants(read: tuple[str, ...], write: tuple[str, ...]) -> tuple[FileGrant, ...]:
    """The grants of a capability set, their roots resolved once (as fs_guard intends), not at every call."""
    return tuple([FileGrant.of(r) for r in read] + [FileGrant.of(r, write=True) for r in write])


def own_namespace(agent: str) -> str:
    return f"agent:{agent}"


def resource_key(access: Access) -> str:
    """The name an "always" decision is stored under (``tool:git.git_push``, ``file:/x (write)``)."""
    return access.describe()


def _real(path: str) -> str:
    return os.path.realpath(os.path.expanduser(path))


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _subtrees_intersect(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for x in a:
        for y in b:
            rx, ry = _real(x), _real(y)
            inner = rx if _within(rx, ry) else ry if _within(ry, rx) else None
            if inner is not None and inner not in out:
                out.append(inner)
    return tuple(out)


def _min_budget(a: int | None, b: int | None) -> int | None:
    """The smaller budget; None has no opinion (kernel default), 0 is unlimited."""
    given = [v for v in (a, b) if v is not None]
    if not given:
        return None
    finite = [v for v in given if v > 0]
    return min(finite) if finite else 0


def attenuate(a: Capabilities, b: Capabilities) -> Capabilities:
    """What both ``a`` and ``b`` grant (never more than either). Denials of either side stay denials."""
    read = _subtrees_intersect(a.files_read + a.files_write, b.files_read + b.files_write)
    write = _subtrees_intersect(a.files_write, b.files_write)
    # An ask pattern is kept where the other side provably grants what it covers. One that cannot be proved
    # (no syntactic containment) turns every allowed pattern it may overlap into an ask: stricter than
    # exact, never wider.
    ask = globs_intersect(a.tools_ask, b.tools_ask + b.tools) + globs_intersect(b.tools_ask, a.tools_ask + a.tools)
    dropped = [p for p in a.tools_ask + b.tools_ask if p not in ask]
    tools = globs_intersect(a.tools, b.tools)
    asked = tuple(t for t in tools if any(globs_may_overlap(t, p) for p in dropped))
    return Capabilities(
        llm_token_budget=_min_budget(a.llm_token_budget, b.llm_token_budget),
        max_priority=PRIORITIES[max(PRIORITIES.index(a.max_priority), PRIORITIES.index(b.max_priority))],
        models=globs_intersect(a.models, b.models),
        tools=tuple(t for t in tools if t not in asked),
        tools_ask=tuple(dict.fromkeys(ask + asked)),
        tools_deny=tuple(dict.fromkeys(a.tools_deny + b.tools_deny)),
        files_read=tuple(p for p in read if p not in write),
        files_write=write,
        memory_read=globs_intersect(a.memory_read + a.memory_write, b.memory_read + b.memory_write),
        memory_write=globs_intersect(a.memory_write, b.memory_write),
        max_children=min(a.max_children, b.max_children),
        network=a.network and b.network,
        tool_arg_paths=tuple(dict.fromkeys(a.tool_arg_paths + b.tool_arg_paths)),
    )


class AccessGuard(Generic[P]):
    """Pure decisions over one process's capability set.

    ``processes`` looks a pid up in the process table (for ``proc`` accesses: an agent may only act on its
    own children, and spawn at most ``max_children`` live ones); ``policy`` holds the user's "always".
    """

    def __init__(
        self,
        *,
        policy: P | None = None,
        processes: Callable[[int], Process | None] | None = None,
        children: Callable[[int], int] | None = None,
        task_owner: Callable[[int], str | None] | None = None,
    ) -> None:
        self.policy = policy
        self._processes = processes or (lambda pid: None)
        self._children = children or (lambda pid: 0)
        self._task_owner = task_owner or (lambda tree: None)

    def decide(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        decision, reason = self._rules(proc, caps, access)
        if decision == "ask" and self.policy is not None:
            remembered = self.policy.lookup(proc.agent, resource_key(access))
            if remembered is not None:
                return remembered, f"{reason}; the user chose to always {remembered} it"
        return decision, reason

    def _rules(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        kind = access.kind
        if kind == "tool":
            return self._tool(proc, caps, access)
        if kind == "file":
            try:
                confine(file_grants(caps.files_read, caps.files_write), access.target, write=access.write)
            except PathDenied as exc:
                return "deny", exc.message
            return "allow", ""
        if kind == "memory":
            if access.target == own_namespace(proc.agent):
                return "allow", ""
            patterns = caps.memory_write if access.write else caps.memory_read + caps.memory_write
            if matches_any(patterns, access.target):
                return "allow", ""
            verb = "write" if access.write else "read"
            return "deny", f"memory namespace {access.target} not granted for {verb}"
        if kind == "task":
            return self._task(proc, caps, access)
        if kind == "llm":
            if not matches_any(caps.models, access.target):
                return "deny", f"model {access.target} not granted"
            left = proc.budget_left
            if left is not None and left <= 0:
                return "deny", f"token budget of {proc.token_budget} used up"
            return "allow", ""
        if kind == "net":
            return ("allow", "") if caps.network else ("deny", "network egress not granted")
        if kind == "proc":
            return self._proc(proc, caps, access)
        return "deny", f"unknown resource kind {kind}"

    def _tool(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        name = access.target
        if matches_any(caps.tools_deny, name):
            return "deny", f"tool {name} is denied"
        if access.args and matches_any(caps.tool_arg_paths, name):
            refused = self._tool_paths(proc, caps, access)
            if refused:
                return "deny", refused
        if matches_any(caps.tools_ask, name):
            return "ask", f"tool {name} needs approval"
        if matches_any(caps.tools, name):
            return "allow", ""
        return "deny", f"tool {name} not granted"

    def _tool_paths(self, proc: Process, caps: Capabilities, access: Access) -> str:
        """Why a path-like argument of this call is refused ("" when all are inside the file grants)."""
        for key, value in (access.args or {}).items():
            if key.lower() not in PATH_ARGS:
                continue
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str) or not os.path.isabs(os.path.expanduser(item)):
                    return f"tool {access.target} argument {key!r} must be an absolute path inside a granted folder"
                decision, reason = self._rules(proc, caps, Access("file", item, write=access.write))
                if decision != "allow":
                    return f"tool {access.target} argument {key!r}: {reason}"
        return ""

    def _task(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        """An agent's own task trees are always its own; another agent's only through a memory grant on that
        agent's namespace (``agent:<owner>``: read to look, write to change)."""
        target = access.target
        if target in ("self", "new"):
            return "allow", ""
        if not (target.startswith("t") and target[1:].isdigit()):
            return "deny", f"invalid task tree {target!r}"
        owner = self._task_owner(int(target[1:]))
        if owner is None or owner == proc.agent:
            return "allow", ""  # (an unknown tree is the handler's "not found")
        patterns = caps.memory_write if access.write else caps.memory_read + caps.memory_write
        if matches_any(patterns, own_namespace(owner)):
            return "allow", ""
        return "deny", f"task tree {target} belongs to agent {owner}"

    def _proc(self, proc: Process, caps: Capabilities, access: Access) -> tuple[Decision, str]:
        target = access.target
        if target == "self":
            return "allow", ""
        if target.startswith("spawn:"):
            live = self._children(proc.pid)
            if live >= caps.max_children:
                if caps.max_children == 0:
                    return "deny", "spawning children not granted"
                return "deny", f"max_children ({caps.max_children}) reached"
            return "allow", ""
        try:
            pid = int(target)
        except ValueError:
            return "deny", f"invalid process target {target!r}"
        other = self._processes(pid)
        if other is None:
            return "deny", f"no process {pid}"
        if other.ppid != proc.pid:
            return "deny", f"process {pid} is not a child of pid {proc.pid}"
        return "allow", ""

    def check(self, proc: Process, caps: Capabilities, access: Access) -> None:
        decision, reason = self.decide(proc, caps, access)
        if decision != "allow":
            raise PermissionDenied(f"pid {proc.pid} ({proc.agent}): {reason or 'denied'}")
