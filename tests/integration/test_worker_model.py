"""The worker and supervisor agents on the real bundled model (markers: model, slow): the grammars keep every
choice to the offered tools and every call's arguments to the tool's schema, whatever the small model picks."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.config import Config
from kernel import open_kernel
from memory.store import Store

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.anyio]


async def test_worker_calls_offered_tools_with_valid_arguments_and_answers(tmp_path: Path, aios_home: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(300):
            async with open_kernel(Config(), store=store) as kernel:
                pid = await kernel.spawn("worker", "What is the current time in the UTC timezone?")
                info = await kernel.wait(pid)
        output = "\n".join(m["content"] for m in store.messages(pid) if m["role"] == "assistant")
        calls = [r for r in store.audit_rows() if r["pid"] == pid and r["syscall"] == "tool.call"]
    finally:
        store.close()
    assert info["exit_code"] == 0, info
    assert calls and all(r["decision"] == "allow" for r in calls), output
    assert output.startswith("[1] "), output  # at least one step ran
    assert info["result"], output  # and it answered


async def test_supervisor_runs_its_parts_as_children(tmp_path: Path, aios_home: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(300):
            async with open_kernel(Config(), store=store) as kernel:
                pid = await kernel.spawn("supervisor", "Write a haiku about the sea.")
                info = await kernel.wait(pid)
                children = [p for p in kernel.ps() if p["ppid"] == pid]
    finally:
        store.close()
    assert info["exit_code"] == 0, info
    assert 1 <= len(children) <= 3 and all(c["state"] in ("exited", "failed") for c in children)
    assert info["result"].startswith("1. ")
