"""The ``semfs`` kernel service (``kernel.services["semfs"]``): the kernel's one writer of the file index,
``memory.semfs.core.SemFS`` over the kernel's store.

At boot it takes the writer lock, starts watching every mount, reconciles each against the database (in a
worker thread, so boot does not wait), and runs the background embedder that fills vectors from the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from kernel.engine import Engine
from memory.semfs.core import SemFS

if TYPE_CHECKING:
    from kernel.backends.base import LLMEngine
    from kernel.kernel import Kernel

__all__ = ["open_service"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_service(kernel: Kernel) -> AsyncIterator[SemFS]:
    # The kernel's store file decides where the index lives (tests give the kernel a store of their own).
    db_path = kernel.store.path
    url = kernel.config.semfs.chroma_url
    fs = await anyio.to_thread.run_sync(
        lambda: SemFS(db_path=db_path, chroma_path=db_path.parent / "chroma", chroma_url=url)
    )
    try:
        await anyio.to_thread.run_sync(lambda: fs.start_background(wait=False, llm_busy=_llm_busy(kernel.engine)))
    except BaseException:
        await anyio.to_thread.run_sync(fs.close)
        raise
    try:
        yield fs
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(fs.close)


def _llm_busy(engine: LLMEngine) -> Callable[[], bool] | None:
    """True while the local engine has requests in flight (a remote engine computes elsewhere: never busy)."""
    if not isinstance(engine, Engine):
        return None
    return lambda: engine.busy
