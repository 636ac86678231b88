"""The whole syscall table, as a caller with no grants at all sees it (over the real socket, its own token).

Every syscall is in the table below (a new one fails the coverage test until it is added): each either needs
a grant the caller lacks, so it must be refused and audited ``deny``, or acts only on the caller's own
things (its own process, its own new task tree, a filtered view of what it may use) and says so here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _adversary import open_world

from aios.errors import PermissionDenied
from kernel.syscall_table import load_syscalls
from kernel.syscalls import SYSCALLS

pytestmark = pytest.mark.anyio

#: Syscalls that act only on the caller's own things, and why that needs no grant.
OWN = {
    "proc.self": "its own process record",
    "proc.children": "its own children (none)",
    "proc.exit": "ends itself",
    "task.create": "a new task tree, owned by the caller",
    "task.list": "its own task trees",
    "tool.list": "a view filtered to the tools it may call",
    "tool.search": "a ranking of the tools it may call",
    "tool.servers": "the configured servers' names and health (no secrets, no calls)",
    "task.trees": "a listing filtered to the trees it may read (its own)",
    "mem.namespaces": "a listing filtered to the namespaces it may read (its own)",
    "tool.propose": "a plan over the tools it may call, written with its own LLM budget, not run",
    "proc.engine": "the shared engine's aggregate load (counts and sums, no other process's data)",
    "proc.request": "asks the user; grants nothing by itself (unanswered: not granted)",
}


def _table(w: Any, victim_pid: int, tree: int, node: int) -> dict[str, dict[str, Any]]:
    a, b, g = str(w.granted / "a.txt"), str(w.granted / "sub" / "b.txt"), str(w.granted)
    ns = "agent:intruder"
    step = {"op": "cat", "path": a, "query": "", "dest": "", "text": "", "steps": 1}
    return {
        "fs.ask": {"request": "list my files"},
        "fs.cat": {"path": a},
        "fs.check": {},
        "fs.compare": {"path": a},
        "fs.delete": {"path": a},
        "fs.diff": {"path": a},
        "fs.group": {"name": "v", "query": "notes"},
        "fs.history": {"path": a},
        "fs.index": {"path": g},
        "fs.join": {"sources": [a, b], "into": str(w.granted / "j.md")},
        "fs.ls": {},
        "fs.mount": {"path": str(w.root / "free")},
        "fs.mounts": {},
        "fs.rollback": {"path": a, "steps": 1},
        "fs.run_plan": {"plan": {"steps": [step]}},
        "fs.search": {"query": "notes"},
        "fs.summarize": {"target": a},
        "fs.unmount": {"name": "m"},
        "fs.views": {"drop": "v"},
        "fs.write": {"path": a, "text": "changed"},
        "mem.archive": {"namespace": ns, "text": "x"},
        "mem.core_delete": {"namespace": ns, "label": "persona"},
        "mem.core_get": {"namespace": ns},
        "mem.core_set": {"namespace": ns, "label": "persona", "value": "y"},
        "mem.forget": {"namespace": ns, "item": "a1"},
        "mem.get": {"namespace": ns, "item": "a1"},
        "mem.list": {"namespace": ns},
        "mem.namespaces": {},
        "mem.search": {"namespace": ns, "query": "x"},
        "proc.audit": {},
        "proc.children": {},
        "proc.engine": {},
        "proc.kill": {"pid": victim_pid},
        "proc.log": {},
        "proc.request": {"kind": "file", "target": g, "reason": "to read notes"},
        "proc.self": {},
        "proc.signal": {"pid": victim_pid, "signal": "stop"},
        "proc.spawn": {"agent": "peeker", "goal": ""},
        "proc.wait": {"pid": victim_pid},
        "task.activate": {"tree": tree, "node": node},
        "task.add": {"tree": tree, "title": "x"},
        "task.classify": {"tree": tree, "message": "and book a hotel"},
        "task.create": {"title": "mine"},
        "task.depend": {"tree": tree, "node": node, "on": node},
        "task.get": {"tree": tree},
        "task.history": {"tree": tree, "node": node},
        "task.list": {},
        "task.path": {"tree": tree},
        "task.prompt": {"tree": tree},
        "task.replace": {"tree": tree, "nodes": [node], "title": "x"},
        "task.rollback": {"tree": tree, "node": node, "version": 1},
        "task.show": {"node": node},
        "task.supersede": {"tree": tree, "node": node},
        "task.trees": {},
        "task.update": {"tree": tree, "node": node, "title": "x"},
        "tool.call": {"tool": "time.get_current_time", "args": {}},
        "tool.list": {},
        "tool.plan": {"steps": [{"id": "s1", "tool": "time.get_current_time", "args": {}}]},
        "tool.search": {"query": "time"},
        "tool.propose": {"goal": "what time is it"},
        "tool.servers": {},
        "tool.test": {"server": "time"},
        "tool.try": {"action": "tools", "mcp_config": str(w.granted / "mcp.json")},
        "proc.exit": {},  # last: it ends the caller
    }


def _real_syscalls() -> set[str]:
    load_syscalls()
    return {name for name in SYSCALLS if not name.startswith("proc.test_")}


def test_the_table_covers_every_syscall(tmp_path: Path) -> None:
    class _W:
        granted = tmp_path
        root = tmp_path

    assert set(_table(_W(), 1, 1, 1)) == _real_syscalls()


async def test_a_caller_without_grants_is_refused_every_call_and_each_refusal_is_audited(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with open_world(tmp_path) as (rig, world, callers):
            victim = callers["intruder"]
            made = await victim.call("task.create", title="the victim's task")
            tree, node = made["id"], made["root_id"]
            await victim.call("mem.core_set", label="persona", value="victim")
            victim_pid = (await victim.call("proc.self"))["pid"]
            nobody = callers["nobody"]
            outcomes: dict[str, str] = {}
            for name, payload in _table(world, victim_pid, tree, node).items():
                try:
                    result = await nobody.call(name, **payload)
                except PermissionDenied:
                    outcomes[name] = "denied"
                else:
                    outcomes[name] = "ok" if name != "tool.plan" else repr(result)
            rows = rig.kernel.audit_rows(limit=100_000)
    nobody_rows = [r for r in rows if r["agent"] == "nobody"]
    denied_syscalls = {r["syscall"] for r in nobody_rows if r["decision"] == "deny"}
    wrong = {n: o for n, o in outcomes.items() if (o == "ok") != (n in OWN) and n != "tool.plan"}
    assert wrong == {}
    assert denied_syscalls >= {n for n in outcomes if n not in OWN and n != "tool.plan"}
    # tool.plan runs each step as a checked tool.call: the step is refused and audited as such.
    assert "denied" in outcomes["tool.plan"] and "tool.call" in denied_syscalls
