"""Snapshots (pytest-textual-snapshot) of every TUI mode, the approval dialog and a finished plan DAG, at 80x24
and 160x50, on a real kernel with the FakeBackend. What varies run to run (clock times, timers, kernel log
lines) is pinned; everything else is what the kernel answered.

Update after an intended change: ``pytest tests/unit/test_tui_snapshots.py --snapshot-update`` (and look at
the SVGs in tests/unit/__snapshots__/test_tui_snapshots/)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, TextArea

from aios.config import Config
from kernel.backends.fake import FakeBackend
from kernel.events import ApprovalRequested
from memory.store import Store
from tui import AiosApp, make_app
from tui.approval import ApprovalScreen, approval_screen

SIZES = [(80, 24), (160, 50)]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AiosApp]:
    import kernel.sys_proc
    import tui.logs_screen
    import tui.tools_screen

    monkeypatch.setattr(tui.logs_screen, "_when", lambda value: "12:00:00")
    monkeypatch.setattr(tui.tools_screen.PlanStep, "timer", lambda self: "0.01s")
    monkeypatch.setattr(tui.tools_screen.PlanRun, "took", lambda self: "0.1s")
    monkeypatch.setattr(tui.tools_screen.ToolsScreen, "_latencies", lambda self: {"time": "5ms"})
    monkeypatch.setattr(kernel.sys_proc.LOG_TAIL, "emit", lambda record: None)
    kernel.sys_proc.LOG_TAIL.records.clear()
    store = Store.open(tmp_path / "aios.db")
    try:
        yield make_app(config=Config(), runtime=FakeBackend(), store=store)
    finally:
        store.close()


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await pilot.pause(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def rows(app: AiosApp, selector: str) -> int:
    return app.screen.query_one(selector, DataTable).row_count


def content(app: AiosApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def in_mode(
    mode: str, ready: Callable[[AiosApp], bool], before: Any = None
) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, AiosApp)
        await until(pilot, lambda: app.door is not None, "the kernel")
        if before is not None:
            await before(app)
        app.action_mode(mode)
        await until(pilot, lambda: app.current_mode == mode and getattr(app.screen, "ready", False), f"the {mode} mode")
        await until(pilot, lambda: ready(app), f"the {mode} mode's data")
        steady(app)
        await pilot.pause(0.2)

    return run_before


def steady(app: AiosApp) -> None:
    """A blinking cursor is on or off depending on when the picture is taken: keep it on."""
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]


async def a_tool_call(app: AiosApp) -> None:
    await app.call("tool.call", tool="time.sleep", args={"seconds": 0})


MODES: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "console": in_mode("console", lambda app: "in-process" in app.sub_title),
    "agents": in_mode("agents", lambda app: "model fake-model" in content(app, "#engine-stats")),
    "files": in_mode("files", lambda app: "files ·" in content(app, "#mounts")),
    "memory": in_mode("memory", lambda app: app.screen._shape is not None),  # type: ignore[attr-defined]
    "tools": in_mode(
        "tools",
        lambda app: (
            rows(app, "#tools") > 0
            and rows(app, "#servers") == 4
            and str(app.screen._servers_seen).count("'state': 'ready'") == 4  # type: ignore[attr-defined]
        ),
    ),
    "logs": in_mode("logs", lambda app: rows(app, "#audit") == 1, before=a_tool_call),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", list(MODES))
def test_mode_snapshot(app: AiosApp, snap_compare: Any, mode: str, size: tuple[int, int]) -> None:
    assert snap_compare(app, terminal_size=size, run_before=MODES[mode])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_approval_dialog_snapshot(app: AiosApp, snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await MODES["agents"](pilot)
        request = ApprovalRequested(
            3,
            request_id="r1",
            agent="asker",
            syscall="tool.call",
            resource="tool:git.git_commit",
            reason="tool git.git_commit needs approval",
            timeout_s=60,
        )
        await pilot.app.push_screen(ApprovalScreen(request))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_plan_dag_snapshot(app: AiosApp, snap_compare: Any, size: tuple[int, int]) -> None:
    plan = {
        "steps": [
            {"id": "a", "tool": "time.sleep", "args": {"seconds": 0}},
            {"id": "b", "tool": "time.sleep", "args": {"seconds": 0}},
            {"id": "c", "tool": "time.sleep", "args": {"seconds": 0}, "deps": ["a", "b"]},
            {"id": "bad", "tool": "time.nope", "args": {}},
        ]
    }

    async def run_before(pilot: Pilot[None]) -> None:
        await MODES["tools"](pilot)
        screen: Any = pilot.app.screen
        screen.query_one("#plan-json", TextArea).text = json.dumps(plan, indent=1)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: screen.plan is not None and screen.plan.state != "running", "the plan to end")
        screen.plan.width = 2  # how many ran at once depends on timing: pinned
        screen._show_plan()
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_elicitation_form_snapshot(app: AiosApp, snap_compare: Any) -> None:
    """An MCP server's elicitation: the form generated from its schema (text, integer, boolean, enum)."""

    async def run_before(pilot: Pilot[None]) -> None:
        await MODES["agents"](pilot)
        form = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "Name", "description": "Your name"},
                "age": {"type": "integer", "title": "Age"},
                "news": {"type": "boolean", "title": "Newsletter", "default": True},
                "plan": {"type": "string", "title": "Plan", "enum": ["free", "pro"], "default": "free"},
            },
            "required": ["name", "age"],
        }
        request = ApprovalRequested(
            3,
            request_id="r2",
            agent="registrar",
            syscall="tool.elicit",
            resource="mcp:signup",
            reason="Who should be registered?",
            timeout_s=300,
            form=form,
        )
        await pilot.app.push_screen(approval_screen(request))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
