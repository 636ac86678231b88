"""ctx.request: an agent asks the user for an access it lacks through the approval flow, instead of a flat
denial; an allow grants it to that process only, a deny or headless timeout changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import open_rig

from aios.config import Config
from aios.errors import PermissionDenied, UsageError
from kernel.events import ApprovalRequested, KernelEvent

pytestmark = pytest.mark.anyio


def quick(headless: float) -> Config:
    config = Config()
    config.access.headless_timeout_s = headless
    return config


async def next_event(events: Any, kind: type[KernelEvent]) -> Any:
    async for event in events:
        if isinstance(event, kind):
            return event
    raise AssertionError("event stream ended")


async def _answered(rig: Any, events: Any, ask: Any, answer: str) -> tuple[Any, Any]:
    """Run ``ask()`` while answering the approval it raises with ``answer``; (its result, the request)."""
    out: dict[str, Any] = {}

    async def run() -> None:
        out["result"] = await ask()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        request = await next_event(events, ApprovalRequested)
        await rig.kernel.approve(request.request_id, answer, by="test")
    return out["result"], request


async def test_an_allowed_request_grants_the_folder_to_that_process_only(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(5)) as rig:
            report = rig.root / "elsewhere" / "report.txt"
            report.parent.mkdir(parents=True)
            report.write_text("quarterly numbers")
            events = rig.kernel.subscribe(approver=True)
            pid, beta = await rig.agent("beta")
            with pytest.raises(PermissionDenied):
                await beta.call("proc.test_read", path=str(report))
            granted, request = await _answered(
                rig, events, lambda: beta.request(path=str(report.parent), reason="to read the report"), "allow_once"
            )
            assert granted is True
            assert request.pid == pid and request.resource == f"file:{report.parent.resolve()}"
            assert "to read the report" in request.reason
            assert await beta.call("proc.test_read", path=str(report)) == "quarterly numbers"
            assert await beta.request(path=str(report)) is True  # inside the grant now: nobody is asked
            _, other = await rig.agent("beta")  # another process of the same agent holds nothing more
            with pytest.raises(PermissionDenied):
                await other.call("proc.test_read", path=str(report))
            audited = await anyio.to_thread.run_sync(lambda: rig.kernel.audit_rows(agent="beta"))
            rows = [r for r in audited if r["syscall"] == "proc.request"]
            assert any(r["decision"] == "allow" and "elsewhere" in r["resource"] for r in rows)


async def test_a_denied_or_unanswered_request_changes_nothing(tmp_path: Path) -> None:
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=quick(0.2)) as rig:
            events = rig.kernel.subscribe(approver=True)
            _, beta = await rig.agent("beta")
            granted, _ = await _answered(rig, events, lambda: beta.request(tool="t.push"), "deny")
            assert granted is False
            with pytest.raises(PermissionDenied):
                await beta.call("proc.test_touch", kind="tool", target="t.push")
        async with open_rig(tmp_path / "headless", config=quick(0.2)) as rig:
            _, beta = await rig.agent("beta")  # no approver attached: denied after the headless timeout
            assert await beta.request(tool="t.push", reason="please") is False
            with pytest.raises(UsageError, match=r"one server\.tool name"):
                await beta.request(tool="t.*")
            with pytest.raises(ValueError, match="exactly one"):
                await beta.request(path="/tmp", tool="t.push")
