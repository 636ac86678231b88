"""What the engines over OpenAI-compatible servers share: a queue of requests and its life cycle.

``RemoteEngine`` (one server) and ``EnginePool`` (several) both keep their requests in one queue ordered
by a ``Scheduler``, run in the event loop (``start``/``run``/``aclose``), hand out a ``Generation`` per
request and end it once with its stats or an error. This base class holds that part; a subclass decides
*how* a request is sent (``_dispatch``), how a running one is cancelled (``_cancel_running``) and what its
stats say (``_stats``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from aios.api import ChatMessage
from kernel.backends.base import FinishReason, GenerationStats, SamplingParams
from kernel.engine import EngineClosed
from kernel.generation import Generation, Item
from kernel.scheduler import Candidate, Scheduler

__all__ = ["QueuedEngine", "QueuedRequest"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class QueuedRequest:
    """One request: what was asked, the stream its pieces go to, and its life cycle."""

    id: int
    key: Hashable
    messages: list[ChatMessage] | None
    prompt: str | None
    params: SamplingParams
    priority: str
    send: MemoryObjectSendStream[Item]
    arrived: float = field(default_factory=time.monotonic)
    admitted: float | None = None
    cancelled: bool = False
    done: bool = False
    first_at: float | None = None


R = TypeVar("R", bound=QueuedRequest)


class QueuedEngine(Generic[R]):
    """The queue, the life cycle and the per-key surface of ``LLMEngine``; see the module's docstring."""

    #: No server's tokenizer is reachable cheaply, so ``count_tokens`` estimates.
    exact_token_count = False
    #: The name of the task ``start`` runs ``run`` in, and how its failure is logged.
    _task_name = "aios-queued-engine"
    _what = "the LLM engine"

    def __init__(self, *, max_concurrency: int, policy: str, aging_s: float) -> None:
        self.scheduler = Scheduler(
            max_batch=max_concurrency,
            token_budget=1,
            slots=max_concurrency,
            aging_s=aging_s,
            policy=policy,  # type: ignore[arg-type]
        )
        self._ids = itertools.count(1)
        self._queued: dict[int, R] = {}
        self._running: dict[int, R] = {}
        self._suspended: set[Hashable] = set()
        self._tg: anyio.abc.TaskGroup | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        #: Per-context facts for front ends.
        self.context_info: dict[Hashable, dict[str, Any]] = {}

    def count_tokens(self, text: str) -> int:
        """An estimate of the tokens ``text`` takes (~4 characters a token on English BPE; 3 leaves room)."""
        return math.ceil(len(text) / 3) if text else 0

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve in the background of the running event loop (or ``await tg.start(engine.run)`` instead)."""
        if not self._started:
            self._started = True
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self._task_name)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self._stopped.is_set() or not self._started:
            self._closed = True
            return
        self._closed = True
        self._stop.set()
        await self._stopped.wait()
        if self._task is not None:
            await asyncio.wait([self._task])
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("%s failed", self._what, exc_info=self._task.exception())

    def _stopping(self, requests: Sequence[R]) -> None:
        """``run`` is ending: no more requests, and these end with ``EngineClosed``."""
        self._tg = None
        self._closed = True
        for request in requests:
            self._finish(request, error=EngineClosed("the LLM engine stopped"))
        self._stopped.set()

    # -- the engine surface ---------------------------------------------------------------------------

    def _open(
        self, messages: Sequence[ChatMessage] | None, prompt: str | None
    ) -> tuple[int, list[ChatMessage] | None, MemoryObjectSendStream[Item], MemoryObjectReceiveStream[Item]]:
        """Check a submission: a new request id, its messages as a list, and its stream's two ends."""
        if self._closed or not self._started:
            raise EngineClosed("the LLM engine is not running")
        if (messages is None) == (prompt is None):
            raise ValueError("pass exactly one of messages= or prompt=")
        send, receive = anyio.create_memory_object_stream[Item](math.inf)
        return next(self._ids), list(messages) if messages is not None else None, send, receive

    def _enqueue(self, request: R, receive: MemoryObjectReceiveStream[Item]) -> Generation:
        self._queued[request.id] = request
        self._publish(request.key)
        self._dispatch()
        return Generation(request, receive, lambda: self._cancel(request))

    def release(self, key: Hashable) -> None:
        """The owner of ``key`` is gone: cancel its requests and forget it."""
        for request in [*self._queued.values(), *self._running.values()]:
            if request.key == key:
                self._cancel(request)
        self._suspended.discard(key)
        self.context_info.pop(key, None)

    def suspend(self, key: Hashable) -> None:
        self._suspended.add(key)
        self._publish(key)

    def resume(self, key: Hashable) -> None:
        self._suspended.discard(key)
        self._publish(key)
        self._dispatch()

    def expect_back(self, key: Hashable, seconds: float) -> None:
        """No local KV to keep: the servers manage their own caches."""

    def set_priority(self, key: Hashable, priority: str) -> None:
        for request in [*self._queued.values(), *self._running.values()]:
            if request.key == key:
                request.priority = priority
        self._dispatch()

    # -- admission ------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _can_dispatch(self) -> bool:
        return not (self._tg is None or self._tg.cancel_scope.cancel_called or self._closed or not self._queued)

    def _candidates(self, now: float) -> list[Candidate]:
        """The waiting requests the scheduler may pick, best first (suspended keys wait)."""
        candidates = [
            Candidate(r.id, r.key, r.priority, r.arrived, 0.0, True, 1)
            for r in self._queued.values()
            if r.key not in self._suspended
        ]
        return self.scheduler.order(candidates, now)

    def _cancel(self, request: R) -> None:
        if request.done or request.cancelled:
            return
        request.cancelled = True
        if request.id in self._queued:
            self._finish(request, reason="cancelled")
        else:
            self._cancel_running(request)

    def _cancel_running(self, request: R) -> None:
        raise NotImplementedError

    # -- delivery -------------------------------------------------------------------------------------

    def _finish(self, request: R, *, reason: FinishReason = "stop", error: BaseException | None = None) -> None:
        if request.done:
            return
        request.done = True
        self._queued.pop(request.id, None)
        self._running.pop(request.id, None)
        item: Item = error if error is not None else self._stats(request, reason)
        try:
            request.send.send_nowait(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass
        request.send.close()
        self._finished(request)

    def _finished(self, request: R) -> None:
        """After ``request`` ended (its stream is closed)."""

    def _stats(self, request: R, reason: FinishReason) -> GenerationStats:
        raise NotImplementedError

    @staticmethod
    def _timings(stats: GenerationStats, request: QueuedRequest) -> GenerationStats:
        """Fill the queue wait and time to first piece from the request's clock."""
        if request.admitted is not None:
            stats.queue_wait_s = request.admitted - request.arrived
        if request.first_at is not None:
            stats.ttft_s = request.first_at - request.arrived
        return stats

    def _publish(self, key: Hashable, **facts: Any) -> None:
        info = self.context_info.get(key, {"context_tokens": 0})
        self.context_info[key] = {**info, "residency": "remote", "suspended": key in self._suspended, **facts}
