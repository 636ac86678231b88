"""``proc.request``: an agent asks the user, through the approval flow, for an access it does not hold.

Instead of a flat denial, an agent that needs a folder or a tool its manifest did not ask for can say so, with a
reason; the user sees it like any approval (the TUI's dialog, the `aios run` prompt, `aios approvals watch`)
and answers. An allow grants the access to this process (and the children it spawns later) until it ends; the
manifest itself is never changed, so the next run asks again, unless the user answered "always" (allow or deny):
that answer is in the policy file and settles the same request in later runs without asking. A deny, a timeout
or no front end to ask (headless) leaves everything as it was. Every request and its outcome is in the audit log.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from kernel.syscalls import Access, Request, syscall

if TYPE_CHECKING:
    from kernel.process import Process


class ProcRequestRequest(Request):
    #: What is asked for: a folder or file (``file``), or one tool (``tool``, ``server.tool``).
    kind: Literal["file", "tool"]
    target: str = Field(min_length=1, max_length=4096)
    #: For a file: write access (which implies read).
    write: bool = False
    #: Why the agent needs it, shown to the user.
    reason: str = Field("", max_length=500)


def _widened(proc: Process, request: ProcRequestRequest, target: str) -> Any:
    caps = proc.caps
    if request.kind == "tool":
        return dataclasses.replace(caps, tools=(*caps.tools, target))
    if request.write:
        return dataclasses.replace(caps, files_write=(*caps.files_write, target))
    return dataclasses.replace(caps, files_read=(*caps.files_read, target))


@syscall("proc.request", ProcRequestRequest, access=lambda k, p, r: [])
async def proc_request(kernel: Any, proc: Process, request: ProcRequestRequest) -> dict[str, Any]:
    """Ask the user for an access this process does not hold (a file subtree, a tool), with a reason. Granted
    (``granted: true``) for the rest of this process when the user allows it; ``asked`` says whether the user
    was asked (false: it was already granted)."""
    if request.kind == "file":
        target = os.path.realpath(os.path.expanduser(request.target))
    else:
        if "." not in request.target or any(c in request.target for c in "*?"):
            from aios.errors import UsageError

            raise UsageError(f"proc.request: a tool is one server.tool name, not {request.target!r}")
        target = request.target
    access = Access(request.kind, target, write=request.write)
    decision, _ = kernel.guard.decide(proc, proc.caps, access)
    if decision == "allow":
        return {"granted": True, "asked": False, "resource": access.describe()}
    why = f"{proc.agent} asks for {access.describe()}" + (f": {request.reason}" if request.reason else "")
    policy = kernel.guard.policy
    remembered = None if policy is None else policy.recall(proc.agent, request.kind, target, write=request.write)
    if remembered is not None:  # answered "always" (allow or deny) in an earlier run: not asked again
        decision, target = remembered
        reason = f"{why}; the user chose always {decision} (`aios policy list`)"
    else:
        decision, reason = await kernel.approval_broker.ask(proc, "proc.request", access, why)
    granted = decision == "allow"
    if granted and proc.alive:
        proc.caps = _widened(proc, request, target)
    kernel.audit_process(proc, "proc.request", access.describe(), "allow" if granted else "deny", reason=reason or why)
    return {"granted": granted, "asked": remembered is None, "resource": access.describe(), "reason": reason}
