"""Process rows and conversation messages, written behind by one thread on its own connection.

The kernel records every state change of every process (``running``, ``waiting_llm``...) and every turn's
messages. A commit is a WAL fsync, 1-2 ms on a quiet disk and far more on a busy one; done on the event
loop it stalled every other client for that long, several times per LLM call. Here the kernel only queues
the row; the writer commits everything queued so far in one transaction, keeping only the latest row of
each process (a row is the process's whole state, so earlier ones in the same batch are moot).

``flush`` waits until everything queued is committed: call it (in a worker thread) before reading these
tables back, or before acknowledging a write a caller must be able to rely on. A crash loses only what
was queued since the last commit (typically a few ms); a restarted kernel reaps the rows of processes
that were running anyway.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from memory.batch_writer import BatchWriter
from memory.store import _PROCESS_COLUMNS

__all__ = ["StoreWriter"]

log = logging.getLogger(__name__)

_MESSAGE = "INSERT INTO messages (pid, role, content, created_at) VALUES (?, ?, ?, ?)"


def _upsert_sql(columns: tuple[str, ...]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "pid")
    return (
        f"INSERT INTO processes ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
        f"ON CONFLICT(pid) DO UPDATE SET {updates}"
    )


class StoreWriter(BatchWriter):
    """Queues writes to the ``processes`` and ``messages`` tables; one thread commits them in batches."""

    name = "aios-store-writer"
    pragmas = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON")

    def __init__(self, db_path: Path) -> None:
        self._sql: dict[tuple[str, ...], str] = {}
        super().__init__(db_path)

    def save_process(self, record: dict[str, Any]) -> None:
        """Queue the latest row of one process (``Store.save_process``'s columns)."""
        self._put(("process", {k: record[k] for k in _PROCESS_COLUMNS if k in record}))

    def add_message(self, pid: int, role: str, content: str) -> None:
        self._put(("message", (pid, role, content, time.time())))

    def _commit(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        latest: dict[int, dict[str, Any]] = {}
        messages = []
        for kind, data in items:
            if kind == "process":
                latest[data["pid"]] = data
            else:
                messages.append(data)
        try:
            with conn:  # process rows first: messages refer to them
                for row in latest.values():
                    columns = tuple(row)
                    sql = self._sql.get(columns) or self._sql.setdefault(columns, _upsert_sql(columns))
                    conn.execute(sql, tuple(row.values()))
                conn.executemany(_MESSAGE, messages)
        except sqlite3.Error:
            log.exception("store writer: %d process row(s), %d message(s) not written", len(latest), len(messages))
