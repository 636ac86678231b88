"""The caller's side of one LLM request, shared by the local and the remote engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from anyio.streams.memory import MemoryObjectReceiveStream

from kernel.backends.base import GenerationStats

__all__ = ["Generation", "Item"]

#: What an engine sends a request's caller: text pieces, then the final stats or the error.
Item = str | GenerationStats | BaseException


class Generation:
    """Iterate it for text; ``stats`` is set when it ends. Leaving early cancels the request."""

    def __init__(self, request: Any, receive: MemoryObjectReceiveStream[Item], cancel: Callable[[], None]) -> None:
        self._request = request
        self._receive = receive
        self._cancel = cancel
        self.stats: GenerationStats | None = None
        self.first_token_at: float | None = None

    @property
    def submitted_at(self) -> float:
        return float(self._request.arrived)

    @property
    def admitted_at(self) -> float | None:
        """When the engine first scheduled it (None while queued), where the engine records that."""
        return getattr(self._request, "admitted", None)

    def cancel(self) -> None:
        self._cancel()

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async with self._receive:
                async for item in self._receive:
                    if isinstance(item, GenerationStats):
                        self.stats = item
                        return
                    if isinstance(item, BaseException):
                        raise item
                    if self.first_token_at is None:
                        self.first_token_at = time.monotonic()
                    yield item
        finally:
            if self.stats is None:
                self.cancel()  # the engine stops at the next token boundary / closes the stream
