"""One thread, one SQLite connection, commits in batches: the shape every write-behind writer here shares.

Callers only queue an item (microseconds); the thread takes everything queued so far, commits it in one
transaction, then waits for more. Under light load items land within a millisecond; under load they batch
up. ``flush`` waits until everything queued is committed; ``close`` commits what is queued and stops. A
crash loses only what was queued since the last commit (typically a few ms).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["BatchWriter"]

log = logging.getLogger(__name__)

_BATCH = 1024


class BatchWriter:
    """Subclasses implement ``_commit(conn, items)``; ``_put(item)`` queues one (any tuple)."""

    #: The thread's name (shows in py-spy and thread dumps).
    name = "aios-writer"
    pragmas: tuple[str, ...] = ("PRAGMA journal_mode=WAL",)

    def __init__(self, db_path: Path, *, join_timeout: float = 30.0) -> None:
        self._path = db_path
        self._queue: queue.SimpleQueue[tuple[Any, ...] | threading.Event | None] = queue.SimpleQueue()
        self._closed = False
        self._join_timeout = join_timeout
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _put(self, item: tuple[Any, ...]) -> None:
        self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every item queued so far is committed."""
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            log.warning("%s did not flush within %.0fs", self.name, timeout)

    def close(self) -> None:
        """Commit what is queued and stop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=self._join_timeout)

    def _commit(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30)
        try:
            for pragma in self.pragmas:
                conn.execute(pragma)
            stop = False
            while not stop:
                items = [self._queue.get()]
                while len(items) < _BATCH:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(i is None for i in items)
                rows = [i for i in items if isinstance(i, tuple)]
                if rows:
                    try:
                        self._commit(conn, rows)
                    except sqlite3.Error:
                        log.exception("%s: %d item(s) could not be written", self.name, len(rows))
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
        finally:
            conn.close()
