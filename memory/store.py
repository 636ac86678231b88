"""The SQLite store: the source of truth for processes, messages and the audit log.

Opened through sqlite-utils in WAL mode, with migrations applied at open (each in a transaction, so a
crash mid-migration leaves the previous schema). Inspect it with ``sqlite3 $(aios paths db)``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlite_utils

from aios import paths
from aios.errors import StoreError
from aios.fileio import ensure_writable_dir
from memory.migrations import all_migrations

__all__ = ["TERMINAL_STATES", "Store"]

log = logging.getLogger(__name__)

TERMINAL_STATES = ("exited", "failed")

_PROCESS_COLUMNS = (
    "pid",
    "ppid",
    "agent",
    "owner",
    "state",
    "priority",
    "goal",
    "created_at",
    "ended_at",
    "exit_code",
    "result",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "llm_calls",
    "llm_wait_s",
    "ttft_s",
    "boot_id",
    "tbt_s",
    "queue_wait_s",
    "prefill_computed",
    "swaps",
    "restores",
    "recomputes",
    "residency",
    "tool_calls",
    "tool_s",
)


class Store:
    """The kernel's store. Thread-safe: every statement on the shared connection runs under ``lock``, which
    the memory stores over the same connection (task trees, agent memory) share, so callers may use it from
    worker threads."""

    def __init__(self, db: sqlite_utils.Database, path: Path, *, read_only: bool) -> None:
        self.db = db
        self.path = path
        self.read_only = read_only
        self.lock = threading.RLock()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | None = None) -> Store:
        """Open (creating if needed) the store for writing and bring its schema up to date."""
        path = path or paths.db_path()
        try:
            ensure_writable_dir(path.parent)
        except OSError as exc:
            raise StoreError(
                f"data directory {path.parent} is not writable: {exc.strerror or exc}",
                "fix its permissions or set AIOS_HOME to a writable folder",
            ) from None
        try:
            conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
            db = sqlite_utils.Database(conn)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            for migration_set in all_migrations():
                migration_set.apply(db)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {path}: {exc}", "move the file away to start a fresh store") from None
        return cls(db, path, read_only=False)

    @classmethod
    def open_read_only(cls, path: Path | None = None) -> Store | None:
        """Open an existing store without writing anything; ``None`` if there is none yet."""
        path = path or paths.db_path()
        if not path.exists():
            return None
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read store {path}: {exc}") from None
        return cls(sqlite_utils.Database(conn), path, read_only=True)

    def close(self) -> None:
        with self.lock:
            self.db.conn.close()

    def applied_migrations(self) -> list[str]:
        with self.lock:
            return [m.name for ms in all_migrations() for m in ms.applied(self.db)]

    # -- processes -----------------------------------------------------------------------------

    def next_pid(self) -> int:
        with self.lock:
            row = self.db.execute("SELECT max(pid) FROM processes").fetchone()
        return int(row[0] or 0) + 1

    def save_process(self, record: dict[str, Any]) -> None:
        data = {k: record[k] for k in _PROCESS_COLUMNS if k in record}
        with self.lock, self.db.conn:
            self.db["processes"].upsert(data, pk="pid")  # type: ignore[union-attr]

    def processes(self, *, include_exited: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        with self.lock:
            if not self.db["processes"].exists():
                return []
            where = "" if include_exited else f"WHERE state NOT IN ({', '.join('?' * len(TERMINAL_STATES))})"
            params: Iterable[Any] = () if include_exited else TERMINAL_STATES
            sql = f"SELECT * FROM processes {where} ORDER BY pid DESC LIMIT {int(limit)}"
            return list(reversed([dict(r) for r in self.db.query(sql, list(params))]))

    def get_process(self, pid: int) -> dict[str, Any] | None:
        with self.lock:
            rows = list(self.db.query("SELECT * FROM processes WHERE pid = ?", [pid]))
        return dict(rows[0]) if rows else None

    def reap_orphans(self, boot_id: str) -> int:
        """Processes left running by a kernel that is gone can never finish: mark them failed."""
        with self.lock, self.db.conn:
            cur = self.db.execute(
                "UPDATE processes SET state = 'failed', error = 'kernel stopped while it ran', ended_at = ? "
                f"WHERE state NOT IN ({', '.join('?' * len(TERMINAL_STATES))}) AND boot_id != ?",
                [time.time(), *TERMINAL_STATES, boot_id],
            )
        return int(cur.rowcount)

    # -- messages ------------------------------------------------------------------------------

    def add_message(self, pid: int, role: str, content: str) -> int:
        with self.lock, self.db.conn:
            table = self.db.table("messages")
            table.insert({"pid": pid, "role": role, "content": content, "created_at": time.time()})
            assert table.last_pk is not None  # set by the insert just made
            return int(table.last_pk)

    def messages(self, pid: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.db.query("SELECT * FROM messages WHERE pid = ? ORDER BY id", [pid])]

    # -- audit ---------------------------------------------------------------------------------

    def audit_rows(
        self, *, agent: str | None = None, denied_only: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if agent:
            clauses.append("agent = ?")
            params.append(agent)
        if denied_only:
            clauses.append("decision = 'deny'")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT {int(limit)}"
        with self.lock:
            return list(reversed([dict(r) for r in self.db.query(sql, params)]))
