"""The audit writer: audit rows are queued in memory and committed by one thread in batches.

A commit per row (a WAL fsync each) would cost far more than the check itself; here a syscall only queues
its row, and the writer commits everything queued so far in one transaction, then waits for more. Under
light load rows land within a millisecond; under load they batch up. A crash loses only rows queued since
the last commit (typically under a few ms). ``flush`` waits until everything queued is committed, so reads
through the kernel always see every earlier row.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from memory.batch_writer import BatchWriter

__all__ = ["AuditLog"]

_COLUMNS = ("ts", "pid", "agent", "token_id", "syscall", "resource", "decision", "reason", "detail")
_INSERT = f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


class AuditLog(BatchWriter):
    name = "aios-audit"

    def __init__(self, db_path: Path) -> None:
        super().__init__(db_path, join_timeout=10)

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
        self._put((time.time(), pid, agent, token_id, syscall, resource, decision, reason, detail_json))

    def _commit(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        with conn:
            conn.executemany(_INSERT, items)
