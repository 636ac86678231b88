"""The planner agent on the real bundled model: the grammar keeps its plan to candidate tools with typed
arguments, the plan runs through tool.plan, and the agent answers (whatever the small model's choice)."""

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
    with anyio.fail_after(240):
        async with open_kernel(Config(), store=store) as kernel:
            pid = await kernel.spawn("planner", "What is the current time in the UTC timezone?")
            info = await kernel.wait(pid)
    assert info["exit_code"] == 0, info
    output = "\n".join(m["content"] for m in store.messages(pid) if m["role"] == "assistant")
    assert "plan 1 (candidates: time.now" in output  # narrowed by catalog search
    header = next(line for line in output.splitlines() if line.startswith("plan 1 (candidates: "))
    candidates = header.removeprefix("plan 1 (candidates: ").removesuffix("):").split(", ")
    planned = [line.split()[1] for line in output.splitlines() if line.startswith("  s")]
    assert planned and set(planned) <= set(candidates)  # the grammar admits nothing else
    assert "[s1]" in output  # the plan ran
    rows = [r for r in store.audit_rows() if r["pid"] == pid and r["syscall"] == "tool.call"]
    assert rows and all(r["decision"] == "allow" for r in rows)
    store.close()
