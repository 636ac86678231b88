"""Request bodies of the socket's endpoints (validated like syscalls: unknown fields are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aios.api import Priority
from kernel.syscalls import ChatMessageModel

__all__ = ["BODIES", "ChatBody", "FsBody"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallBody(_Body):
    syscall: str = Field(min_length=1, max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict)


class FsBody(_Body):
    """``POST /v1/fs``: one ``fs.*``, ``tool.*``, ``mem.*`` or ``task.*`` syscall, or the kernel's records the TUI
    shows (``proc.engine``, ``proc.audit``, ``proc.log``), by the user principal (through ``Kernel.dispatch``:
    checked against ``[access.user]``, audited as "user")."""

    syscall: str = Field(pattern=r"^((fs|tool|mem|task)\.[a-z_]{1,32}|proc\.(engine|audit|log))$")
    payload: dict[str, Any] = Field(default_factory=dict)


class ChatBody(_Body):
    messages: list[ChatMessageModel] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None


class SpawnBody(_Body):
    agent: str = Field(min_length=1, max_length=128)
    goal: str = Field("", max_length=1_000_000)
    interactive: bool | None = None
    priority: Priority | None = None
    #: Return a process token for this agent (to hand to an out-of-process agent program).
    token: bool = False
    #: Run a plugin agent without Landlock (the user's explicit choice; `aios run --unconfined`).
    unconfined: bool = False
    #: Absolute folders the user grants this run, read-only / read and write (`aios run --allow-read/--allow`),
    #: within what [access.user] lets the user grant.
    allow_read: list[str] = Field(default_factory=list, max_length=64)
    allow_write: list[str] = Field(default_factory=list, max_length=64)


class PidBody(_Body):
    pid: int = Field(ge=1)


class SendBody(_Body):
    pid: int = Field(ge=1)
    text: str = Field(max_length=1_000_000)


class NiceBody(_Body):
    pid: int = Field(ge=1)
    priority: Priority


class ApproveBody(_Body):
    id: str = Field(min_length=1, max_length=64)
    answer: Literal["allow_once", "allow_always", "deny", "deny_always", "accept", "decline", "cancel"]
    by: str = Field("", max_length=64)
    #: A form request's (kind ``elicit``) content when the answer is ``accept``.
    content: dict[str, Any] | None = None


class AuditQuery(_Body):
    agent: str | None = None
    denied: bool = False
    limit: int = Field(200, ge=1, le=100_000)


class PolicyQuery(_Body):
    agent: str | None = None


class RevokeBody(_Body):
    id: int = Field(ge=1)


class EventsQuery(_Body):
    approver: bool = False


BODIES: dict[str, type[BaseModel]] = {
    "call": CallBody,
    "chat": ChatBody,
    "fs": FsBody,
    "spawn": SpawnBody,
    "send": SendBody,
    "kill": PidBody,
    "suspend": PidBody,
    "resume": PidBody,
    "wait": PidBody,
    "close_input": PidBody,
    "nice": NiceBody,
    "approve": ApproveBody,
    "audit": AuditQuery,
    "policy": PolicyQuery,
    "revoke": RevokeBody,
    "events": EventsQuery,
}
