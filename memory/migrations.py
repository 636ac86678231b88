"""Schema migrations for ``aios.db``. Append new functions; never edit one that has shipped."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["MIGRATION_SETS", "all_migrations", "migrations"]

migrations = Migrations("aios")

#: Every domain keeps its own migration set (its own module, its own name), applied in this order at open.
#: Add your module's dotted path and attribute here, one line each.
MIGRATION_SETS: tuple[str, ...] = (
    "memory.semfs.migrations:migrations",  # semantic file system
    "memory.memory_migrations:migrations",  # task trees and agent memory
)


def all_migrations() -> list[Migrations]:
    import importlib

    sets = [migrations]
    for dotted in MIGRATION_SETS:
        module, _, attr = dotted.partition(":")
        sets.append(getattr(importlib.import_module(module), attr))
    return sets


@migrations()
def m001_processes_messages_audit(db: Database) -> None:
    db["processes"].create(  # type: ignore[union-attr]
        {
            "pid": int,
            "ppid": int,
            "agent": str,
            "owner": str,
            "state": str,
            "priority": str,
            "goal": str,
            "created_at": float,
            "ended_at": float,
            "exit_code": int,
            "result": str,
            "error": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "llm_calls": int,
            "llm_wait_s": float,
            "ttft_s": float,
            "boot_id": str,
        },
        pk="pid",
    )
    db["processes"].create_index(["state"])  # type: ignore[union-attr]
    db["messages"].create(  # type: ignore[union-attr]
        {"id": int, "pid": int, "role": str, "content": str, "created_at": float},
        pk="id",
        foreign_keys=[("pid", "processes", "pid")],
    )
    db["messages"].create_index(["pid"])  # type: ignore[union-attr]
    db["audit"].create(  # type: ignore[union-attr]
        {
            "id": int,
            "ts": float,
            "pid": int,
            "agent": str,
            "token_id": str,
            "syscall": str,
            "resource": str,
            "decision": str,
            "reason": str,
            "detail": str,
        },
        pk="id",
    )
    db["audit"].create_index(["agent"])  # type: ignore[union-attr]
    db["audit"].create_index(["decision"])  # type: ignore[union-attr]


@migrations()
def m002_engine_accounting(db: Database) -> None:
    table = db["processes"]
    for column, kind in (
        ("tbt_s", float),
        ("queue_wait_s", float),
        ("prefill_computed", int),
        ("swaps", int),
        ("restores", int),
        ("recomputes", int),
        ("residency", str),
    ):
        table.add_column(column, kind)  # type: ignore[union-attr]


@migrations()
def m003_tool_accounting(db: Database) -> None:
    table = db["processes"]
    table.add_column("tool_calls", int)  # type: ignore[union-attr]
    table.add_column("tool_s", float)  # type: ignore[union-attr]
