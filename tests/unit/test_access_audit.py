"""The batched audit writer: every row lands, in order, beside the store's own writes on another connection."""

from __future__ import annotations

import json
from pathlib import Path

from kernel.audit import AuditLog
from memory.store import Store


def test_rows_land_in_order_while_the_store_writes_too(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    log = AuditLog(store.path)
    try:
        for i in range(3000):
            log.record(pid=i, agent="a", syscall="s", resource=f"r{i}", decision="allow", detail={"i": i})
            if i % 100 == 0:  # the main connection keeps writing meanwhile; neither may see "database is locked"
                store.save_process({"pid": i + 1, "agent": "a", "state": "running"})
                store.add_message(i + 1, "user", "hi")
        log.flush()
        rows = store.audit_rows(limit=10_000)
        assert [r["pid"] for r in rows] == list(range(3000))
        assert json.loads(rows[7]["detail"]) == {"i": 7}
        assert {r["token_id"] for r in rows} == {""}
    finally:
        log.close()
        log.close()  # idempotent
        log.flush()  # a no-op once closed
        store.close()


def test_close_commits_what_was_queued(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    log = AuditLog(store.path)
    for i in range(50):
        log.record(pid=None, agent="user", syscall="proc.spawn", resource="chat", decision="allow", reason=str(i))
    log.close()
    assert [r["reason"] for r in store.audit_rows()] == [str(i) for i in range(50)]
    store.close()
