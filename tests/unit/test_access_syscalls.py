"""The syscall path, run against both clients: in-process (ProcessContext) and over the socket (a process
token). Every resource kind is checked, denials are clear errors and audited, and a child never gets more
than its parent."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _access_kit import open_rig

from aios.errors import PermissionDenied, UnknownSyscall, UsageError

pytestmark = pytest.mark.anyio

TRANSPORTS = ["inproc", "socket"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_identity_comes_from_the_caller(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            a, alpha = await rig.agent("alpha")
            b, beta = await rig.agent("beta")
            assert (await alpha.call("proc.self"))["agent"] == "alpha"
            assert (await beta.call("proc.self"))["pid"] == b
            # A payload cannot name another identity: unknown fields are errors.
            with pytest.raises(UsageError, match="pid"):
                await alpha.call("proc.self", pid=b)
            assert a != b


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "target", "write", "expected"),
    [
        ("tool", "t.ok", False, "allow"),
        ("tool", "t.fileread", False, "allow"),
        ("tool", "t.bad", False, "deny"),
        ("tool", "t.other", False, "deny"),
        ("tool", "t.okay", False, "deny"),
        ("memory", "agent:alpha", True, "allow"),
        ("memory", "agent:beta", False, "deny"),
        ("memory", "shared:notes", False, "allow"),
        ("memory", "shared:notes", True, "deny"),
        ("net", "example.org", False, "deny"),
        ("llm", "fake-model", False, "allow"),
        ("proc", "self", False, "allow"),
        ("proc", "1", True, "deny"),
        ("proc", "nonsense", True, "deny"),
    ],
)
async def test_every_resource_kind_is_checked(
    tmp_path: Path, transport: str, kind: str, target: str, write: bool, expected: str
) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            pid, alpha = await rig.agent("alpha")
            if expected == "allow":
                result = await alpha.call("proc.test_touch", kind=kind, target=target, write=write)
                assert result == {"touched": f"{kind}:{target}"}
            else:
                with pytest.raises(PermissionDenied):
                    await alpha.call("proc.test_touch", kind=kind, target=target, write=write)
            rows = [r for r in rig.kernel.audit_rows() if r["syscall"] == "proc.test_touch"]
    assert [(r["pid"], r["agent"], r["decision"]) for r in rows] == [(pid, "alpha", expected)]
    assert rows[0]["token_id"]  # every row names the token the call came with
    assert rows[0]["resource"].startswith(f"{kind}:{target}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_calls_are_clear_errors_and_audited(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            _, alpha = await rig.agent("alpha")
            with pytest.raises(UnknownSyscall, match=r"proc\.nope"):
                await alpha.call("proc.nope")
            with pytest.raises(UsageError, match="kind"):
                await alpha.call("proc.test_touch", kind="disk", target="x")
            with pytest.raises(UsageError, match="write"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ok", write="very")
            assert (await alpha.call("proc.self"))["agent"] == "alpha"  # still served
            denied = rig.kernel.audit_rows(denied_only=True)
    assert [r["syscall"] for r in denied] == ["proc.nope", "proc.test_touch", "proc.test_touch"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_children_are_attenuated_and_bounded(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            parent, alpha = await rig.agent("alpha")
            # "greedy" asks for every tool, every file and the network; as alpha's child it gets alpha's at most.
            child = (await alpha.call("proc.spawn", agent="greedy", goal="x"))["pid"]
            caps = rig.kernel._procs[child].caps
            assert caps.tools == ("t.ok", "t.*read")
            assert caps.tools_deny == ("t.bad",)
            assert not caps.network
            assert caps.max_children == 2
            assert caps.files_write == (str((rig.root / "granted" / "rw").resolve()),)
            assert rig.kernel._procs[child].token_budget <= 1000
            assert rig.kernel._procs[child].ppid == parent
            # Narrowing further on request works; widening is impossible.
            narrowed = await alpha.call("proc.spawn", agent="greedy", caps={"tools": ["t.ok", "x.*"], "network": True})
            ncaps = rig.kernel._procs[narrowed["pid"]].caps
            assert ncaps.tools == ("t.ok",)
            assert not ncaps.network
            # max_children = 2 live children.
            with pytest.raises(PermissionDenied, match="max_children"):
                await alpha.call("proc.spawn", agent="greedy")
            # A process may act on its own children only.
            _, beta = await rig.agent("beta")
            with pytest.raises(PermissionDenied, match="not a child"):
                await beta.call("proc.kill", pid=child)
            with pytest.raises(PermissionDenied, match="spawning children not granted"):
                await beta.call("proc.spawn", agent="greedy")
            await alpha.call("proc.signal", pid=child, signal="stop")
            assert rig.kernel.info(child)["state"] == "suspended"
            await alpha.call("proc.kill", pid=child)
            info = await alpha.call("proc.wait", pid=child)
            assert info["exit_code"] == 143
            children = await alpha.call("proc.children")
            assert {c["pid"] for c in children} == {child, narrowed["pid"]}
            # One child ended: a new one fits again.
            assert (await alpha.call("proc.spawn", agent="beta"))["pid"] > child


async def test_context_spawn_and_wait_facades(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path) as rig:
            _, alpha = await rig.agent("alpha")
            child = await alpha.spawn("greedy", "x", caps={"tools": ["t.ok"]})
            assert rig.kernel._procs[child].caps.tools == ("t.ok",)
            await alpha.call("proc.kill", pid=child)
            assert (await alpha.wait(child))["exit_code"] == 143
            with pytest.raises(UsageError, match="caps"):
                await alpha.spawn("greedy", caps={"network": "please"})
