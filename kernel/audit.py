"""The audit writer: audit rows are queued in memory and committed by one thread in batches.

A commit per row (a WAL fsync each) would cost far more than the check itself; here a syscall only queues
its row, and the writer commits everything queued so far in one transaction, then waits for more. Under
light load rows land within a millisecond; under load they batch up. A crash loses only rows queued since
the last commit (typically under a few ms). ``flush`` waits until everything queued is committed, so reads
through the kernel always see every earlier row.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["AuditLog"]

log = logging.getLogger(__name__)

_COLUMNS = ("ts", "pid", "agent", "token_id", "syscall", "resource", "decision", "reason", "detail")
_INSERT = f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_BATCH = 1024


class AuditLog:
    def __init__(self, db_path: Path) -> None:
        self._path = db_path
        self._queue: queue.SimpleQueue[tuple[Any, ...] | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="aios-audit", daemon=True)
        self._closed = False
        self._thread.start()

    def record(
        self,
        *,
        pid: int | None,
        agent: str,
        syscall: str,
        resource: str,
        decision: str,
        reason: str = "",
        token_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail_json = json.dumps(detail, sort_keys=True) if detail else "{}"
        self._queue.put((time.time(), pid, agent, token_id, syscall, resource, decision, reason, detail_json))

    def flush(self, timeout: float = 10.0) -> None:
        """Block until every row recorded so far is committed."""
        if self._closed:
            return
        done = threading.Event()
        self._queue.put(done)
        if not done.wait(timeout):
            log.warning("audit writer did not flush within %.0fs", timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            stop = False
            while not stop:
                items = [self._queue.get()]
                while len(items) < _BATCH:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows = [i for i in items if isinstance(i, tuple)]
                stop = any(i is None for i in items)
                if rows:
                    try:
                        with conn:
                            conn.executemany(_INSERT, rows)
                    except sqlite3.Error:
                        log.exception("audit writer: %d row(s) could not be written", len(rows))
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
        finally:
            conn.close()
