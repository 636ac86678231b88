from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aios.errors import StoreError
from kernel.audit import AuditLog
from memory.migrations import all_migrations
from memory.store import Store


def test_open_creates_schema_in_wal_mode(aios_home: Path) -> None:
    store = Store.open()
    try:
        assert store.path == aios_home / "aios.db"
        assert {"processes", "messages", "audit"} <= set(store.db.table_names())
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.applied_migrations() == [m.name for ms in all_migrations() for m in ms._migrations]
    finally:
        store.close()


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    first = Store.open(path)
    first.save_process({"pid": 1, "agent": "chat", "state": "running", "boot_id": "b1"})
    applied = first.applied_migrations()
    first.close()
    second = Store.open(path)
    try:
        assert second.applied_migrations() == applied
        assert second.get_process(1)["agent"] == "chat"  # data survives a reopen
    finally:
        second.close()


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    path = tmp_path / "none.db"
    assert Store.open_read_only(path) is None
    assert not path.exists()
    Store.open(path).close()
    ro = Store.open_read_only(path)
    assert ro is not None
    with pytest.raises(sqlite3.OperationalError):
        ro.add_message(1, "user", "x")
    ro.close()


def test_unwritable_data_dir_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="is not writable") as info:
        Store.open(blocker / "sub" / "aios.db")
    assert "AIOS_HOME" in info.value.one_line()


def test_corrupt_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open store"):
        Store.open(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_processes_messages_and_audit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "a.db")
    try:
        store.save_process({"pid": 1, "agent": "chat", "state": "running", "boot_id": "old"})
        store.save_process({"pid": 2, "agent": "chat", "state": "exited", "boot_id": "old"})
        store.save_process({"pid": 3, "agent": "chat", "state": "waiting_llm", "boot_id": "new"})
        assert store.next_pid() == 4
        assert [p["pid"] for p in store.processes()] == [1, 3]
        assert [p["pid"] for p in store.processes(include_exited=True)] == [1, 2, 3]
        # A new kernel reaps what an old one left running, but not its own processes.
        assert store.reap_orphans("new") == 1
        assert store.get_process(1)["state"] == "failed"
        assert store.get_process(3)["state"] == "waiting_llm"
        store.add_message(3, "user", "hi")
        store.add_message(3, "assistant", "hello")
        assert [(m["role"], m["content"]) for m in store.messages(3)] == [("user", "hi"), ("assistant", "hello")]
        audit = AuditLog(store.path)  # the kernel's batching writer, on its own connection
        audit.record(pid=3, agent="chat", syscall="llm.chat", resource="m", decision="allow")
        audit.record(pid=3, agent="chat", syscall="llm.chat", resource="m", decision="deny", reason="budget")
        audit.close()
        assert len(store.audit_rows()) == 2
        assert [r["reason"] for r in store.audit_rows(denied_only=True)] == ["budget"]
    finally:
        store.close()
