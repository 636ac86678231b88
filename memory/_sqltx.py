"""One write transaction on a shared sqlite-utils connection, taken with ``BEGIN IMMEDIATE``.

A deferred transaction that reads first (FTS5 reads its config before writing) and then writes fails at
once with "database is locked" when another connection (the audit writer) committed in between; taking
the write lock up front makes SQLite wait on the busy timeout instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils

__all__ = ["immediate"]


@contextmanager
def immediate(db: sqlite_utils.Database, lock: threading.RLock) -> Iterator[None]:
    with lock:
        conn = db.conn
        if conn.in_transaction:  # nested inside a caller's transaction: a savepoint
            with db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
