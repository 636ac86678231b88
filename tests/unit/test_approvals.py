"""Approvals: an ask suspends the caller in waiting_approval until a front end answers; headless it is denied
after the timeout; "always" answers persist and can be revoked; killing the process cancels its request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import Rig, open_rig

from aios.config import Config
from aios.errors import PermissionDenied, UsageError
from kernel.events import ApprovalRequested, ApprovalResolved, KernelEvent
from kernel.policy import PolicyStore, policy_path

pytestmark = pytest.mark.anyio


def quick(headless: float = 0.3) -> Config:
    config = Config()
    config.access.headless_timeout_s = headless
    return config


async def next_event(events: Any, kind: type[KernelEvent]) -> Any:
    async for event in events:
        if isinstance(event, kind):
            return event
    raise AssertionError("event stream ended")


async def ask_in_background(rig: Rig, caller: Any, tool: str, outcome: dict[str, Any], tg: Any) -> None:
    async def call() -> None:
        try:
            outcome["result"] = await caller.call("proc.test_touch", kind="tool", target=tool)
        except PermissionDenied as exc:
            outcome["denied"] = exc.message

    tg.start_soon(call)


async def test_headless_ask_is_denied_after_the_timeout(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(0.3)) as rig:
            events = rig.kernel.subscribe()  # a plain subscriber is not an approver
            pid, alpha = await rig.agent("alpha")
            outcome: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                await ask_in_background(rig, alpha, "t.ask_push", outcome, tg)
                request = await next_event(events, ApprovalRequested)
                assert (request.pid, request.resource, request.timeout_s) == (pid, "tool:t.ask_push", 0.3)
                assert rig.kernel.info(pid)["state"] == "waiting_approval"
                assert [p["id"] for p in rig.kernel.approvals()] == [request.request_id]
                resolved = await next_event(events, ApprovalResolved)
            assert resolved.decision == "timeout"
            assert "headless" in outcome["denied"]
            assert rig.kernel.info(pid)["state"] != "waiting_approval"
            assert rig.kernel.approvals() == []
            row = rig.kernel.audit_rows(denied_only=True)[-1]
    assert (row["syscall"], row["resource"], row["decision"]) == ("proc.test_touch", "tool:t.ask_push", "deny")
    assert "within 0.3s" in row["reason"]


async def test_headless_timeout_zero_denies_at_once(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        async with open_rig(tmp_path, config=quick(0)) as rig:
            _, alpha = await rig.agent("alpha")
            with pytest.raises(PermissionDenied, match="headless"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ask1")


async def test_allow_once_then_always_then_revoke(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(0)) as rig:
            events = rig.kernel.subscribe(approver=True)
            pid, alpha = await rig.agent("alpha")
            for answer in ("allow_once", "allow_always"):
                outcome: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:
                    await ask_in_background(rig, alpha, "t.ask1", outcome, tg)
                    request = await next_event(events, ApprovalRequested)
                    assert rig.kernel.info(pid)["state"] == "waiting_approval"
                    await rig.kernel.approve(request.request_id, answer, by="test")
                assert outcome == {"result": {"touched": "tool:t.ask1"}}
                resolved = await next_event(events, ApprovalResolved)
                assert (resolved.decision, resolved.by) == (answer, "test")
            # Remembered: no question this time, and the rule is in the policy file.
            assert await alpha.call("proc.test_touch", kind="tool", target="t.ask1") == {"touched": "tool:t.ask1"}
            assert rig.kernel.approvals() == []
            rules = PolicyStore().rules()
            assert [(r.agent, r.resource, r.decision) for r in rules] == [("alpha", "tool:t.ask1", "allow")]
            # "always" is per agent and per resource: another tool still asks (and, headless here, is denied).
            events.close()
            with pytest.raises(PermissionDenied, match="headless"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ask2")
            rig.kernel.guard.policy.revoke(rules[0].id)
            with pytest.raises(PermissionDenied, match="headless"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ask1")
            rows = [r for r in rig.kernel.audit_rows() if r["resource"] == "tool:t.ask1"]
    assert [r["decision"] for r in rows] == ["allow", "allow", "allow", "deny"]
    assert "allowed once by test" in rows[0]["reason"]
    assert "always allow" in rows[2]["reason"]


async def test_deny_and_deny_always(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(5)) as rig:
            events = rig.kernel.subscribe(approver=True)
            _, alpha = await rig.agent("alpha")
            for answer in ("deny", "deny_always"):
                outcome: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:
                    await ask_in_background(rig, alpha, "t.ask9", outcome, tg)
                    request = await next_event(events, ApprovalRequested)
                    await rig.kernel.approve(request.request_id, answer)
                assert "denied" in outcome
            with anyio.fail_after(1):  # no question asked any more
                with pytest.raises(PermissionDenied, match="always deny"):
                    await alpha.call("proc.test_touch", kind="tool", target="t.ask9")


async def test_a_remembered_allow_never_widens_the_manifest(tmp_path: Path) -> None:
    path = policy_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rules = [
        {"id": i, "agent": "alpha", "resource": r, "decision": "allow", "created_at": 0.0}
        for i, r in enumerate(["tool:t.bad", "tool:t.other", "net:example.org"], 1)
    ]
    path.write_text(json.dumps({"rules": rules}))
    with anyio.fail_after(10):
        async with open_rig(tmp_path, config=quick(0)) as rig:
            _, alpha = await rig.agent("alpha")
            for kind, target in [("tool", "t.bad"), ("tool", "t.other"), ("net", "example.org")]:
                with pytest.raises(PermissionDenied):
                    await alpha.call("proc.test_touch", kind=kind, target=target)


async def test_killing_a_waiting_process_cancels_its_request(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(0)) as rig:
            events = rig.kernel.subscribe(approver=True)
            pid = await rig.kernel.spawn("asker", "t.ask1")  # its own run makes the call that asks
            request = await next_event(events, ApprovalRequested)
            assert request.pid == pid
            await rig.kernel.kill(pid)
            resolved = await next_event(events, ApprovalResolved)
            info = await rig.kernel.wait(pid)
            assert (resolved.request_id, resolved.decision) == (request.request_id, "cancelled")
            assert info["exit_code"] == 143
            assert rig.kernel.approvals() == []


async def test_bad_answers_are_clear_errors(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(5)) as rig:
            events = rig.kernel.subscribe(approver=True)
            _, alpha = await rig.agent("alpha")
            with pytest.raises(UsageError, match="no pending approval"):
                await rig.kernel.approve("nope", "allow_once")
            outcome: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                await ask_in_background(rig, alpha, "t.ask1", outcome, tg)
                request = await next_event(events, ApprovalRequested)
                with pytest.raises(UsageError, match="unknown answer"):
                    await rig.kernel.approve(request.request_id, "sure")
                assert len(rig.kernel.approvals()) == 1  # still waiting
                await rig.kernel.approve(request.request_id, "deny")
            with pytest.raises(UsageError, match="no pending approval"):
                await rig.kernel.approve(request.request_id, "allow_once")


async def test_approval_over_the_socket(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, "socket", config=quick(0)) as rig:
            front = await rig.frontend()
            events = front.subscribe(approver=True)
            while not rig.kernel.events.has_approver():  # the event stream is connected
                await anyio.sleep(0.01)
            _, alpha = await rig.agent("alpha")
            outcome: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                await ask_in_background(rig, alpha, "t.ask1", outcome, tg)
                request = await next_event(events, ApprovalRequested)
                assert [p["id"] for p in front.approvals()] == [request.request_id]
                assert front.ps()[0]["state"] == "waiting_approval"
                await front.approve(request.request_id, "allow_once", by="cli")
            assert outcome == {"result": {"touched": "tool:t.ask1"}}
            resolved = await next_event(events, ApprovalResolved)
            assert resolved.by == "cli"


async def test_an_unanswered_request_with_a_front_end_attached_times_out(tmp_path: Path) -> None:
    config = quick(0)
    config.access.approval_timeout_s = 0.2
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=config) as rig:
            events = rig.kernel.subscribe(approver=True)
            _, alpha = await rig.agent("alpha")
            with pytest.raises(PermissionDenied, match=r"no answer from the front end within 0\.2s"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ask1")
            request = await next_event(events, ApprovalRequested)
            resolved = await next_event(events, ApprovalResolved)
            assert (request.timeout_s, resolved.decision) == (0.2, "timeout")
