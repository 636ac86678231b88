"""Blocking work (SQLite, search, indexing, embedding) off the event loop, in bounded worker pools.

Every thread that runs Python competes with the event loop for the GIL. Bounding each kind of heavy work to
a few threads keeps control calls (``ps``, ``kill``, approvals) fast however many clients search at once:
excess calls wait their turn in the pool's queue (an anyio ``CapacityLimiter``, FIFO) instead of all running
and starving the loop. Without a bound, anyio's default limiter lets 40 threads run at once: with 32 clients
searching, the loop got the GIL about 1/33 of the time and ``GET /v1/ps`` took 0.3-1.2 s.

Pools (sizes measured on 2 cores with bench/_security_load.py; see POOL_SIZES):

``search``  queries over the file index, agent memory, the tool catalog (FTS5 + embedding + chroma)
``index``   indexing, reconciling, rebuilding, writes that re-chunk and re-embed files
``db``      short SQLite statements (task trees, agent memory, audit reads, process rows)
``default`` anything else that blocks

Limiters belong to one event loop (an anyio ``CapacityLimiter`` binds to the loop that first waits on it),
so each running loop gets its own set, kept in a ``RunVar``: tests and the TUI run many loops in a process.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
from anyio.lowlevel import RunVar

__all__ = ["POOL_SIZES", "pool_stats", "run_blocking"]

T = TypeVar("T")

#: Threads per pool. "search" and "index" run CPU-heavy Python (row building, tokenising, chunking) that
#: holds the GIL. Measured with bench/_security_load.py (32 clients searching, 2 shared cores, 20 s runs):
#: search pool 1 / 2 / 3 / 4 / 40 gave ps p99 14 / 15-19 / 24 / 29 / 32 ms at 65-84 searches/s whatever the
#: size (semfs serialises its statements on one connection, the embedding model runs one batch at a time),
#: so 2: one search's GIL-free parts (SQLite, onnxruntime, chroma) overlap another's Python. "db" calls
#: mostly wait (on SQLite, the store lock, a writer thread's commit) with the GIL released.
POOL_SIZES: dict[str, int] = {"search": 2, "index": 1, "db": 4, "default": 4}

_limiters: RunVar[dict[str, anyio.CapacityLimiter]] = RunVar("aios_blocking_limiters")


def _limiter(pool: str) -> anyio.CapacityLimiter:
    try:
        limiters = _limiters.get()
    except LookupError:
        limiters = {}
        _limiters.set(limiters)
    limiter = limiters.get(pool)
    if limiter is None:
        if pool not in POOL_SIZES:
            raise ValueError(f"unknown worker pool {pool!r} (pools: {', '.join(POOL_SIZES)})")
        limiter = limiters[pool] = anyio.CapacityLimiter(POOL_SIZES[pool])
    return limiter


async def run_blocking(fn: Callable[..., T], *args: Any, pool: str = "default", **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a worker thread of ``pool`` and return its result.

    A call waits (cancellably) for a free thread of its pool; once running it finishes even if the caller
    is cancelled (a thread cannot be interrupted), and its result is dropped.
    """
    return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=_limiter(pool))


def pool_stats() -> dict[str, dict[str, int]]:
    """Per pool of the running loop: ``size``, ``busy`` threads and ``waiting`` calls (for tests, status)."""
    out = {}
    for pool in POOL_SIZES:
        limiter = _limiter(pool)
        out[pool] = {
            "size": int(limiter.total_tokens),
            "busy": int(limiter.borrowed_tokens),
            "waiting": limiter.statistics().tasks_waiting,
        }
    return out
