"""The planner agent on the real bundled model: a goal of two independent parts runs both at once, each part's
tool chosen from the narrowed catalog with its arguments copied from the goal, checked and audited, and each
part answered from its own results."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.config import Config
from kernel import open_kernel
from memory.store import Store

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.anyio]


async def test_planner_agent_plans_runs_and_answers(tmp_path: Path, aios_home: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    goal = "What is the current time in the UTC timezone, and what is the current time in Asia/Tokyo?"
    with anyio.fail_after(240):
        async with open_kernel(Config(), store=store) as kernel:
            pid = await kernel.spawn("planner", goal)
            info = await kernel.wait(pid)
    assert info["exit_code"] == 0, info
    output = "\n".join(m["content"] for m in store.messages(pid) if m["role"] == "assistant")
    assert "plan: 2 parts at once" in output
    rows = [r for r in store.audit_rows() if r["pid"] == pid and r["syscall"] == "tool.call"]
    assert len(rows) >= 2 and all(r["decision"] == "allow" for r in rows)
    called = [line for line in output.splitlines() if line.startswith("[")]
    assert any("UTC" in line for line in called) and any("Asia/Tokyo" in line for line in called)  # copied
    answer = output.strip().splitlines()[-1]
    assert answer.count(";") == 1  # one answer per part
    store.close()
