"""The single syscall path: unknown names, malformed requests and denials are clear errors, all audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.config import Config
from aios.errors import PermissionDenied, UnknownSyscall, UsageError
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.access import AccessGuard
from kernel.backends.fake import FakeBackend
from kernel.process import Process
from kernel.syscalls import SYSCALLS, Access, Request, syscall
from memory.store import Store

pytestmark = pytest.mark.anyio


class Prober(Agent):
    """Runs the syscalls its goal names and reports each outcome."""

    manifest = Manifest(name="prober", capabilities=Capabilities(tools=("t.allowed",), tools_deny=("t.bad*",)))

    async def run(self, ctx: Context, goal: str) -> str | None:
        outcomes = []
        for name, payload in _PROBES[goal]:
            try:
                outcomes.append(("ok", await ctx.call(name, **payload)))
            except (UnknownSyscall, UsageError, PermissionDenied) as exc:
                outcomes.append((type(exc).__name__, exc.message))
        _RESULTS[goal] = outcomes
        return "done"


_PROBES: dict[str, list[tuple[str, dict[str, Any]]]] = {}
_RESULTS: dict[str, list[tuple[str, Any]]] = {}


class EchoToolRequest(Request):
    tool: str
    n: int


if "proc.test_echo_tool" not in SYSCALLS:

    @syscall("proc.test_echo_tool", EchoToolRequest, access=lambda k, p, r: [Access("tool", r.tool)])
    async def _echo_tool(kernel: Any, proc: Process, request: EchoToolRequest) -> dict[str, Any]:
        return {"tool": request.tool, "n": request.n * 2}


class Extras:
    from aios.hookspecs import hookimpl

    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Prober]


async def _probe(tmp_path: Path, probes: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[str, Any]], Store]:
    key = f"probe-{len(_PROBES)}"
    _PROBES[key] = probes
    store = Store.open(tmp_path / "aios.db")
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Extras(), name="extras")
    with anyio.fail_after(10):
        async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
            pid = await kernel.spawn("prober", key)
            await kernel.wait(pid)
    return _RESULTS[key], store


async def test_allowed_call_runs_and_is_audited(tmp_path: Path) -> None:
    results, store = await _probe(tmp_path, [("proc.test_echo_tool", {"tool": "t.allowed", "n": 21})])
    assert results == [("ok", {"tool": "t.allowed", "n": 42})]
    rows = [r for r in store.audit_rows() if r["syscall"] == "proc.test_echo_tool"]
    assert [(r["resource"], r["decision"]) for r in rows] == [("tool:t.allowed", "allow")]


async def test_unknown_malformed_and_denied_calls_fail_clearly_and_are_audited(tmp_path: Path) -> None:
    results, store = await _probe(
        tmp_path,
        [
            ("proc.nope", {}),
            ("proc.test_echo_tool", {"tool": "t.allowed", "n": "many"}),
            ("proc.test_echo_tool", {"tool": "t.allowed", "n": 1, "extra": True}),
            ("proc.test_echo_tool", {"tool": "t.bad_one", "n": 1}),
            ("proc.test_echo_tool", {"tool": "t.other", "n": 1}),
            ("proc.self", {}),
        ],
    )
    kinds = [kind for kind, _ in results]
    assert kinds == ["UnknownSyscall", "UsageError", "UsageError", "PermissionDenied", "PermissionDenied", "ok"]
    assert "unknown syscall 'proc.nope'" in results[0][1]
    assert "n:" in results[1][1]
    assert "extra" in results[2][1]
    assert "denied" in results[3][1]
    assert "not granted" in results[4][1]
    assert results[5][1]["agent"] == "prober"
    denied = store.audit_rows(denied_only=True)
    assert [r["syscall"] for r in denied] == ["proc.nope", *["proc.test_echo_tool"] * 4]


def test_registering_a_name_twice_or_outside_the_families_is_a_bug() -> None:
    with pytest.raises(ValueError, match="twice"):
        syscall("proc.self", Request, access=lambda k, p, r: [])(_echo_tool)
    with pytest.raises(ValueError, match="must be one of"):
        syscall("weird.call", Request, access=lambda k, p, r: [])


def test_guard_defaults_deny_and_own_namespace_is_allowed(tmp_path: Path) -> None:
    guard = AccessGuard()
    proc = Process(pid=1, agent="a", goal="", priority="normal", token_budget=0, interactive=False)
    caps = Capabilities()
    assert guard.decide(proc, caps, Access("tool", "fs.read"))[0] == "deny"
    assert guard.decide(proc, caps, Access("file", str(tmp_path)))[0] == "deny"
    assert guard.decide(proc, caps, Access("memory", "agent:b"))[0] == "deny"
    assert guard.decide(proc, caps, Access("memory", "agent:a", write=True))[0] == "allow"
    assert guard.decide(proc, caps, Access("net", "x"))[0] == "deny"
    granted = Capabilities(files_read=(str(tmp_path),), tools_ask=("git.*",))
    assert guard.decide(proc, granted, Access("file", str(tmp_path / "x.txt")))[0] == "allow"
    assert guard.decide(proc, granted, Access("file", str(tmp_path / "x.txt"), write=True))[0] == "deny"
    assert guard.decide(proc, granted, Access("tool", "git.git_log"))[0] == "ask"
