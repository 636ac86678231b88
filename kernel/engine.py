"""The engine thread: the one owner of the loaded model.

Requests arrive from the event loop, run in the engine thread one after another, and stream text back
to per-request async queues. Cancellation is checked between tokens. (The batched scheduler that runs
many sequences per decode step replaces the FIFO here without changing ``submit``.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from kernel.backends.base import GenerationStats, LLMBackend, SamplingParams

__all__ = ["Engine", "EngineClosed", "Generation"]

log = logging.getLogger(__name__)


class EngineClosed(RuntimeError):
    pass


@dataclass
class _Request:
    prompt: str
    params: SamplingParams
    send: MemoryObjectSendStream[str | GenerationStats | BaseException]
    loop: asyncio.AbstractEventLoop
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)


class Generation:
    """One submitted request: iterate it for text; ``stats`` and timings are set when it ends."""

    def __init__(self, request: _Request, receive: MemoryObjectReceiveStream[str | GenerationStats | BaseException]):
        self._request = request
        self._receive = receive
        self.stats: GenerationStats | None = None
        self.first_token_at: float | None = None
        self.finished_at: float | None = None

    @property
    def submitted_at(self) -> float:
        return self._request.submitted

    def cancel(self) -> None:
        self._request.cancelled.set()

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async with self._receive:
                async for item in self._receive:
                    if isinstance(item, GenerationStats):
                        self.stats = item
                        self.finished_at = time.monotonic()
                        return
                    if isinstance(item, BaseException):
                        raise item
                    if self.first_token_at is None:
                        self.first_token_at = time.monotonic()
                    yield item
        finally:
            # Leaving early (break, cancellation) stops the engine at the next token boundary.
            self.cancel()


class Engine:
    def __init__(self, backend: LLMBackend) -> None:
        self.backend = backend
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aios-engine", daemon=True)
        self._thread.start()

    def submit(self, prompt: str, params: SamplingParams) -> Generation:
        if self._closed or self._thread is None:
            raise EngineClosed("the LLM engine is not running")
        send, receive = anyio.create_memory_object_stream[str | GenerationStats | BaseException](math.inf)
        request = _Request(prompt, params, send, asyncio.get_running_loop())
        self._queue.put(request)
        return Generation(request, receive)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread is not None:
            await anyio.to_thread.run_sync(self._thread.join, abandon_on_cancel=True)
        self.backend.close()

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            if request.cancelled.is_set():
                self._deliver(request, GenerationStats(finish_reason="cancelled"))
                continue
            self._serve(request)

    def _serve(self, request: _Request) -> None:
        def sink(text: str) -> bool:
            if request.cancelled.is_set():
                return False
            return self._deliver(request, text)

        try:
            stats = self.backend.generate(request.prompt, request.params, sink)
        except Exception as exc:  # surfaced to the caller as the request's error
            log.exception("generation failed")
            self._deliver(request, exc)
            return
        self._deliver(request, stats)

    @staticmethod
    def _deliver(request: _Request, item: str | GenerationStats | BaseException) -> bool:
        def put() -> None:
            try:
                request.send.send_nowait(item)
                if not isinstance(item, str):
                    request.send.close()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                request.cancelled.set()

        try:
            request.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            request.cancelled.set()
            return False
        return True
