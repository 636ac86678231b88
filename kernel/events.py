"""What the kernel tells front ends, in the past tense. Every event names the process it concerns."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "EVENT_TYPES",
    "ApprovalRequested",
    "ApprovalResolved",
    "EventBus",
    "InputSent",
    "KernelEvent",
    "OutputWritten",
    "ProcessExited",
    "ProcessSpawned",
    "ProcessStateChanged",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolProgressed",
    "TurnEnded",
    "event_from_dict",
    "event_to_dict",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelEvent:
    pid: int


@dataclass(frozen=True)
class ProcessSpawned(KernelEvent):
    info: dict[str, Any]


@dataclass(frozen=True)
class ProcessStateChanged(KernelEvent):
    state: str


@dataclass(frozen=True)
class OutputWritten(KernelEvent):
    text: str


@dataclass(frozen=True)
class TurnEnded(KernelEvent):
    pass


@dataclass(frozen=True)
class InputSent(KernelEvent):
    text: str


@dataclass(frozen=True)
class ProcessExited(KernelEvent):
    state: str
    exit_code: int
    result: str | None
    error: str | None


@dataclass(frozen=True)
class ApprovalRequested(KernelEvent):
    """A syscall needs the user's answer; the process waits in ``waiting_approval``."""

    request_id: str
    agent: str
    syscall: str
    resource: str
    reason: str
    #: Seconds the kernel waits before denying (0 = until answered).
    timeout_s: float
    #: An MCP server's elicitation (syscall ``tool.elicit``): the form's JSON schema; None for access requests.
    form: dict[str, Any] | None = None


@dataclass(frozen=True)
class ApprovalResolved(KernelEvent):
    request_id: str
    #: allow_once, allow_always, deny, deny_always, timeout or cancelled.
    decision: str
    by: str


@dataclass(frozen=True)
class ToolCallStarted(KernelEvent):
    """An agent's ``tool.call`` passed its checks and went to the server; ``call`` numbers it in its process."""

    call: int
    tool: str


@dataclass(frozen=True)
class ToolProgressed(KernelEvent):
    """A progress notification from the server during call ``call`` (``total`` None when it gave none)."""

    call: int
    tool: str
    progress: float
    total: float | None
    message: str | None


@dataclass(frozen=True)
class ToolCallFinished(KernelEvent):
    call: int
    tool: str
    is_error: bool
    #: ok, or the error kind (tool_error, timeout, cancelled, ...).
    outcome: str
    elapsed_s: float


EVENT_TYPES: dict[str, type[KernelEvent]] = {
    cls.__name__: cls
    for cls in (
        ProcessSpawned,
        ProcessStateChanged,
        OutputWritten,
        TurnEnded,
        InputSent,
        ProcessExited,
        ApprovalRequested,
        ApprovalResolved,
        ToolCallStarted,
        ToolProgressed,
        ToolCallFinished,
    )
}


def event_to_dict(event: KernelEvent) -> dict[str, Any]:
    """The wire form of an event (the socket's event stream): its fields plus ``type``."""
    return {"type": type(event).__name__, **asdict(event)}


def event_from_dict(data: dict[str, Any]) -> KernelEvent | None:
    """The event an ``event_to_dict`` form describes; None (logged at debug) for a type this side does not
    know or a form it cannot read, so a client of another version skips what it does not understand."""
    kind = str(data.get("type"))
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        log.debug("skipping an event of unknown type %r", kind)
        return None
    names = {f.name for f in fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:  # a field this side needs is missing (an older kernel)
        log.debug("skipping a %s event it cannot read: %s", kind, exc)
        return None


class EventBus:
    """Fans events out to subscribers. Each subscriber has its own unbounded stream, so a slow front end
    delays only itself and never loses a token."""

    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[KernelEvent]] = []
        self._approvers: list[MemoryObjectSendStream[KernelEvent]] = []

    def subscribe(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """A new event stream. ``approver``: this front end answers approval requests while it is open."""
        send, receive = anyio.create_memory_object_stream[KernelEvent](math.inf)
        self._subscribers.append(send)
        if approver:
            self._approvers.append(send)
        return receive

    def has_approver(self) -> bool:
        """Whether a front end that answers approvals is listening (its stream still open)."""
        self._approvers = [s for s in self._approvers if s.statistics().open_receive_streams > 0]
        return bool(self._approvers)

    def publish(self, event: KernelEvent) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                send.close()
                self._subscribers.remove(send)

    def close(self) -> None:
        for send in self._subscribers:
            send.close()
        self._subscribers.clear()
        self._approvers.clear()
