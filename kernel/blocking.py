"""Blocking work (SQLite, search, indexing, embedding) off the event loop, in bounded worker pools.

Every thread that runs Python competes with the event loop for the GIL. Bounding each kind of heavy work to
a few threads keeps control calls (``ps``, ``kill``, approvals) fast however many clients search at once:
excess calls wait their turn in the pool's queue instead of all running and starving the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio

__all__ = ["run_blocking"]

T = TypeVar("T")

#: Threads per pool. "search" and "index" are CPU-heavy Python; "db" is short SQLite calls.
POOL_SIZES = {"search": 2, "index": 1, "db": 4, "default": 4}

_limiters: dict[str, anyio.CapacityLimiter] = {}


def _limiter(pool: str) -> anyio.CapacityLimiter:
    limiter = _limiters.get(pool)
    if limiter is None:
        limiter = _limiters[pool] = anyio.CapacityLimiter(POOL_SIZES.get(pool, POOL_SIZES["default"]))
    return limiter


async def run_blocking(fn: Callable[..., T], *args: Any, pool: str = "default", **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread of ``pool`` and return its result."""
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_limiter(pool))
