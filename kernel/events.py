"""What the kernel tells front ends, in the past tense. Every event names the process it concerns."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "EventBus",
    "InputSent",
    "KernelEvent",
    "OutputWritten",
    "ProcessExited",
    "ProcessSpawned",
    "ProcessStateChanged",
    "TurnEnded",
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


class EventBus:
    """Fans events out to subscribers. Each subscriber has its own unbounded stream, so a slow front end
    delays only itself and never loses a token."""

    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[KernelEvent]] = []

    def subscribe(self) -> MemoryObjectReceiveStream[KernelEvent]:
        send, receive = anyio.create_memory_object_stream[KernelEvent](math.inf)
        self._subscribers.append(send)
        return receive

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
