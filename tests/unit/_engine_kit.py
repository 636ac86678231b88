"""The engine under test: one started on a runtime (the fake backend in unit tests), closed after the block, and
a generation read to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from kernel.backends.base import GenerationStats
from kernel.engine import Engine, Generation


@asynccontextmanager
async def engine_for(runtime: Any, tmp_path: Path, **kwargs: Any) -> AsyncIterator[Engine]:
    """An ``Engine`` on ``runtime`` swapping to ``tmp_path/swap``, every block bounded to 20 s."""
    engine = Engine(runtime, swap_dir=tmp_path / "swap", **kwargs)
    engine.start()
    try:
        with anyio.fail_after(20):
            yield engine
    finally:
        await engine.aclose()


async def collect(generation: Generation) -> tuple[str, GenerationStats]:
    """All of ``generation``'s text, and its stats."""
    text = "".join([piece async for piece in generation])
    assert generation.stats is not None
    return text, generation.stats
