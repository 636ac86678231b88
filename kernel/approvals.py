"""Approvals: an ``ask`` decision suspends the calling process until the user answers.

The request is published as ``ApprovalRequested``; a front end that subscribed as an approver (the TUI, a
CLI prompt on a TTY, a socket client streaming events with ``approver=1``) answers with ``Kernel.approve``:
allow once, always for this agent, deny, or deny always. "Always" answers are remembered in the policy file.
With no approver attached the request is denied after ``[access] headless_timeout_s``; with one attached it
waits ``approval_timeout_s`` (0 = until answered). Killing the process cancels its request.

An MCP server's elicitation (a form it wants filled during a tool call) is a request of kind ``elicit``
(syscall ``tool.elicit``, ``form`` = the requested schema), answered ``accept`` (with content that must fit
the schema, else the answer is refused and the request stays open), ``decline`` or ``cancel``; no answer in
time, or no front end, is ``cancel``.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import anyio
import jsonschema

from aios.errors import UsageError
from kernel.access import AccessGuard, Decision, resource_key
from kernel.blocking import run_blocking
from kernel.events import ApprovalRequested, ApprovalResolved, EventBus
from kernel.process import ProcState
from kernel.syscalls import Access

if TYPE_CHECKING:
    from aios.config import Config
    from kernel.process import Process

__all__ = ["ANSWERS", "ELICIT_ANSWERS", "Answer", "ApprovalBroker", "ApprovalHost", "PendingApproval"]

log = logging.getLogger(__name__)

Answer = Literal["allow_once", "allow_always", "deny", "deny_always"]
ANSWERS: tuple[str, ...] = get_args(Answer)
#: The answers to an elicitation request (kind ``elicit``), as MCP names them.
ELICIT_ANSWERS: tuple[str, ...] = ("accept", "decline", "cancel")


@dataclass
class PendingApproval:
    id: str
    pid: int
    agent: str
    syscall: str
    resource: str
    reason: str
    created_at: float
    timeout_s: float
    answer: str | None = None
    by: str = ""
    done: anyio.Event = field(default_factory=anyio.Event)
    #: ``ask`` (a syscall's access) or ``elicit`` (an MCP server's form; ``form`` is its requested schema).
    kind: str = "ask"
    form: dict[str, Any] | None = None
    content: dict[str, Any] | None = None

    def info(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "form": self.form,
            "id": self.id,
            "pid": self.pid,
            "agent": self.agent,
            "syscall": self.syscall,
            "resource": self.resource,
            "reason": self.reason,
            "created_at": self.created_at,
            "timeout_s": self.timeout_s,
        }


class ApprovalHost(Protocol):
    """What the broker needs of the kernel (``kernel.kernel.Kernel``, which imports this module)."""

    @property
    def config(self) -> Config: ...

    @property
    def events(self) -> EventBus: ...

    @property
    def guard(self) -> AccessGuard[Any]: ...

    def set_state(self, proc: Process, state: ProcState) -> None: ...


class ApprovalBroker:
    def __init__(self, kernel: ApprovalHost) -> None:
        self._kernel = kernel
        self._pending: dict[str, PendingApproval] = {}

    def pending(self) -> list[dict[str, Any]]:
        return [p.info() for p in self._pending.values()]

    async def ask(
        self, proc: Process, syscall: str, access: Access, reason: str, *, remember: bool = True
    ) -> tuple[Decision, str]:
        """Wait for the user's answer to one ``ask``; return the final decision and why (``remember``: an
        "always" answer goes into the policy file; False: the caller records it itself)."""
        kernel = self._kernel
        settings = kernel.config.access
        attached = kernel.events.has_approver()
        timeout = settings.approval_timeout_s if attached else settings.headless_timeout_s
        if not attached and timeout <= 0:
            return "deny", f"{reason}; no front end to ask (headless)"
        request = PendingApproval(
            id=secrets.token_hex(6),
            pid=proc.pid,
            agent=proc.agent,
            syscall=syscall,
            resource=resource_key(access),
            reason=reason,
            created_at=time.time(),
            timeout_s=timeout,
        )
        self._pending[request.id] = request
        before = proc.state
        kernel.set_state(proc, ProcState.WAITING_APPROVAL)
        kernel.events.publish(
            ApprovalRequested(proc.pid, request.id, proc.agent, syscall, request.resource, reason, timeout)
        )
        try:
            with anyio.move_on_after(timeout if timeout > 0 else math.inf):
                await request.done.wait()
        except anyio.get_cancelled_exc_class():
            request.answer, request.by = "cancelled", "kernel"
            kernel.events.publish(ApprovalResolved(proc.pid, request.id, "cancelled", "kernel"))
            raise
        finally:
            self._pending.pop(request.id, None)
            kernel.set_state(proc, ProcState.RUNNING if before is ProcState.WAITING_APPROVAL else before)
        if request.answer is None:
            request.answer, request.by = "timeout", "kernel"
        kernel.events.publish(ApprovalResolved(proc.pid, request.id, request.answer, request.by))
        return await self._outcome(request, reason, attached, remember)

    async def _outcome(
        self, request: PendingApproval, reason: str, attached: bool, remember: bool = True
    ) -> tuple[Decision, str]:
        answer, by = request.answer, request.by
        if answer in ("allow_always", "deny_always"):
            decision: Decision = "allow" if answer == "allow_always" else "deny"
            policy = self._kernel.guard.policy
            if policy is not None and remember:  # rewrites policy.json: not on the event loop
                await run_blocking(
                    policy.remember, request.agent, request.resource, decision, syscall=request.syscall, pool="db"
                )
            return decision, f"{reason}; {by} chose always {decision}"
        if answer == "allow_once":
            return "allow", f"{reason}; allowed once by {by}"
        if answer == "deny":
            return "deny", f"{reason}; denied by {by}"
        where = "no answer from the front end" if attached else "no front end attached (headless)"
        return "deny", f"{reason}; {where} within {request.timeout_s:g}s"

    async def elicit(
        self, proc: Process | None, server: str, message: str, schema: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | None, str]:
        """Ask the user to fill an MCP server's form; return (accept|decline|cancel, content, who/why).

        ``proc``: the process whose tool call the server is serving, when known (else the user principal's
        pid 0). No front end, or no answer within the timeout, cancels."""
        kernel = self._kernel
        settings = kernel.config.access
        attached = kernel.events.has_approver()
        timeout = settings.approval_timeout_s if attached else settings.headless_timeout_s
        if not attached and timeout <= 0:
            return "cancel", None, "no front end to ask (headless)"
        pid, agent = (proc.pid, proc.agent) if proc is not None else (0, "user")
        request = PendingApproval(
            id=secrets.token_hex(6),
            pid=pid,
            agent=agent,
            syscall="tool.elicit",
            resource=f"mcp:{server}",
            reason=message,
            created_at=time.time(),
            timeout_s=timeout,
            kind="elicit",
            form=schema,
        )
        self._pending[request.id] = request
        held = proc is not None and pid > 0 and not proc.state.terminal
        before = proc.state if proc is not None else None
        if held:
            assert proc is not None
            kernel.set_state(proc, ProcState.WAITING_APPROVAL)
        kernel.events.publish(
            ApprovalRequested(pid, request.id, agent, "tool.elicit", request.resource, message, timeout, form=schema)
        )
        try:
            with anyio.move_on_after(timeout if timeout > 0 else math.inf):
                await request.done.wait()
        except anyio.get_cancelled_exc_class():
            request.answer, request.by = "cancelled", "kernel"
            kernel.events.publish(ApprovalResolved(pid, request.id, "cancelled", "kernel"))
            raise
        finally:
            self._pending.pop(request.id, None)
            if held and proc is not None and before is not None and not proc.state.terminal:
                kernel.set_state(proc, ProcState.RUNNING if before is ProcState.WAITING_APPROVAL else before)
        if request.answer is None:
            request.answer, request.by = "timeout", "kernel"
        kernel.events.publish(ApprovalResolved(pid, request.id, request.answer, request.by))
        if request.answer == "timeout":
            where = "no answer from the front end" if attached else "no front end attached (headless)"
            return "cancel", None, f"{where} within {timeout:g}s"
        return request.answer, request.content, f"{request.answer} by {request.by}"

    def answer(self, request_id: str, answer: str, *, by: str = "user", content: dict[str, Any] | None = None) -> None:
        request = self._pending.get(request_id)
        if request is not None and request.kind == "elicit" and request.answer is None:
            self._answer_elicit(request, answer, by, content)
            return
        if answer not in ANSWERS:
            raise UsageError(f"unknown answer {answer!r} (use one of: {', '.join(ANSWERS)})")
        if request is None or request.answer is not None:
            raise UsageError(f"no pending approval {request_id!r}", "see `aios approvals`")
        if content is not None:
            raise UsageError(f"approval {request_id!r} is not a form: answer it without content")
        request.answer = answer
        request.by = by
        request.done.set()

    def _answer_elicit(self, request: PendingApproval, answer: str, by: str, content: dict[str, Any] | None) -> None:
        """Answer a form: content that does not fit the schema is refused and the request stays open."""
        if answer not in ELICIT_ANSWERS:
            raise UsageError(
                f"unknown answer {answer!r} to form request {request.id} (use one of: {', '.join(ELICIT_ANSWERS)})"
            )
        if answer == "accept":
            if not isinstance(content, dict):
                raise UsageError(f"accepting form request {request.id} needs its content (a JSON object)")
            problem = _form_problem(request.form or {}, content)
            if problem is not None:
                raise UsageError(f"form content does not fit the schema of request {request.id}: {problem}")
            request.content = content
        request.answer = answer
        request.by = by
        request.done.set()


def _form_problem(schema: dict[str, Any], content: dict[str, Any]) -> str | None:
    """Why ``content`` does not fit the server's requested schema (flat primitive properties), or None."""
    properties = schema.get("properties") or {}
    extra = sorted(set(content) - set(properties))
    if extra:
        return f"unknown field {extra[0]!r} (fields: {', '.join(properties) or 'none'})"
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(content))
    except jsonschema.exceptions.SchemaError as exc:
        return f"the server's schema is invalid: {exc.message}"[:300]
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "content"
    return f"{where}: {error.message}"[:300]
