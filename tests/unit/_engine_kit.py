"""The engine under test: one started on a runtime (the fake backend in unit tests), closed after the block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from kernel.engine import Engine


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
