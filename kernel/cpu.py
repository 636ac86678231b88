"""Adapts the engine's thread count to CPU contention.

llama.cpp's threads spin-wait for each other; when another process (an agent's tool, a build) keeps one of
two cores busy, 2-thread decoding fell from 142 to 33 tok/s here while 1 thread held 87. The monitor reads
how much CPU the rest of the machine uses (``/proc/stat`` minus this process) and recommends one thread per
core that is actually free.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

__all__ = ["ContentionMonitor", "machine_busy_s"]

log = logging.getLogger(__name__)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_s() -> float | None:
    """CPU seconds all processes have spent busy since boot; None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICKS


class ContentionMonitor:
    def __init__(
        self,
        cores: int,
        *,
        interval_s: float = 1.0,
        busy: Callable[[], float | None] = machine_busy_s,
        own: Callable[[], float] = time.process_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cores = max(1, cores)
        self.interval_s = interval_s
        self._busy, self._own, self._clock = busy, own, clock
        self._last: tuple[float, float, float] | None = None
        self.others_cores = 0.0

    def recommend(self) -> int | None:
        """Threads to use now, or None when it is not time to decide (or the machine cannot tell)."""
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.interval_s:
            return None
        busy, own = self._busy(), self._own()
        if busy is None:
            return None
        previous, self._last = self._last, (now, busy, own)
        if previous is None:
            return None
        wall = now - previous[0]
        others = max(0.0, (busy - previous[1]) - (own - previous[2]))
        self.others_cores = others / wall if wall > 0 else 0.0
        return max(1, self.cores - int(self.others_cores + 0.35))
