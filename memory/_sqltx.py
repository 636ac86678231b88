"""One write transaction on a shared sqlite-utils connection, taken with ``BEGIN IMMEDIATE``.

A deferred transaction that reads first (FTS5 reads its config before writing) and then writes fails at
once with "database is locked" when another connection (the audit writer) committed in between; taking
the write lock up front makes SQLite wait on the busy timeout instead.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlite_utils

__all__ = ["immediate", "locked"]

F = TypeVar("F", bound=Callable[..., Any])


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


def locked(method: F) -> F:
    """Run a store's read method holding its ``_lock``.

    The stores share one connection across threads (the kernel's ``db`` pool and the event loop, e.g. an
    access check reading which tree a node is in). sqlite-utils wraps each ``query`` in a savepoint, so an
    unlocked read interleaved with another thread's transaction releases the wrong savepoint ("no such
    savepoint: sqlite_utils_query"). Reads take the same re-entrant lock as writes.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
