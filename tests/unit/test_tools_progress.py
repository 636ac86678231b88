"""An agent's tool calls are visible while they run: progress notifications from a real stdio MCP server
become kernel events (in order, in-process and over the socket), the process is ``waiting_tool`` during the
call and back afterwards, tool time is accounted, and a client skips event types it does not know."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.client import SocketClient
from aios.config import Config
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.events import (
    KernelEvent,
    ProcessExited,
    ProcessStateChanged,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgressed,
    event_from_dict,
    event_to_dict,
)
from kernel.server import serve_socket
from memory.store import Store
from tests.mcp_servers import slow_server_spec
from tools.config import write_mcp_file

pytestmark = pytest.mark.anyio

_OUT: dict[str, Any] = {}


class ProgressUser(Agent):
    manifest = Manifest(name="progress-user", capabilities=Capabilities(tools=("slow.*",)))

    async def run(self, ctx: Context, goal: str) -> str | None:
        out: dict[str, Any] = {}
        interval = 0.4 if goal == "tui" else 0.05
        out["call"] = await ctx.call("tool.call", tool="slow.progress", args={"steps": 3, "interval": interval})
        if goal == "full":
            out["fail"] = await ctx.call("tool.call", tool="slow.fail", args={"message": "no luck"})
            out["plan"] = await ctx.call(
                "tool.plan",
                steps=[
                    {"id": "a", "tool": "slow.progress", "args": {"steps": 2, "interval": 0.3}},
                    {"id": "b", "tool": "slow.progress", "args": {"steps": 2, "interval": 0.3}},
                ],
            )
        _OUT[goal] = out
        return "done"


class Extras:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [ProgressUser]


@dataclass(frozen=True)
class FromTheFuture(KernelEvent):
    """An event type a client of this version has never heard of."""

    novelty: str


def _plugins() -> PluginManager:
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Extras(), name="progress-extras")
    return plugins


def _story(events: list[KernelEvent], pid: int) -> list[tuple[Any, ...]]:
    """The tool-related events of ``pid`` (and its state changes), as comparable tuples."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.pid != pid:
            continue
        match e:
            case ProcessStateChanged(state=state):
                out.append(("state", state))
            case ToolCallStarted(call=call, tool=tool):
                out.append(("start", call, tool))
            case ToolProgressed(call=call, progress=p, total=t, message=m):
                out.append(("progress", call, p, t, m))
            case ToolCallFinished(call=call, is_error=is_error, outcome=outcome):
                out.append(("end", call, is_error, outcome))
    return out


async def _collect(receive: Any, pid_box: list[int]) -> list[KernelEvent]:
    seen: list[KernelEvent] = []
    async for event in receive:
        seen.append(event)
        if isinstance(event, ProcessExited) and pid_box and event.pid == pid_box[0]:
            break
    return seen


async def test_progress_events_state_and_accounting_in_process(tmp_path: Path) -> None:
    write_mcp_file({"mcpServers": {"slow": slow_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    with anyio.fail_after(40):
        async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=_plugins()) as kernel:
            receive = kernel.subscribe()
            pid = await kernel.spawn("progress-user", "full")
            with receive:
                seen = await _collect(receive, [pid])
            info = kernel.info(pid)
    row = store.get_process(pid)  # the accounting is persisted with the process
    store.close()
    assert row is not None and row["tool_calls"] == 4 and row["tool_s"] == pytest.approx(info["tool_s"])
    assert info["exit_code"] == 0, info
    out = _OUT["full"]
    assert out["call"]["text"] == "done after 3 steps" and out["call"]["is_error"] is False
    story = _story(seen, pid)
    tool = "slow.progress"
    assert story[:9] == [
        ("state", "running"),
        ("start", 1, tool),
        ("state", "waiting_tool"),
        ("progress", 1, 1.0, 3.0, "step 1 of 3"),
        ("progress", 1, 2.0, 3.0, "step 2 of 3"),
        ("progress", 1, 3.0, 3.0, "step 3 of 3"),
        ("state", "running"),
        ("end", 1, False, "ok"),
        ("start", 2, "slow.fail"),
    ]
    # A failing tool is a value to the agent and an error outcome to front ends.
    assert out["fail"]["is_error"] is True and "no luck" in out["fail"]["text"]
    assert story[9:12] == [("state", "waiting_tool"), ("state", "running"), ("end", 2, True, "tool")]
    # The plan's two overlapping calls: one waiting_tool stretch, each call's progress in its own order.
    plan = story[12:]
    assert [s for s in plan if s[0] == "state"] == [("state", "waiting_tool"), ("state", "running")]
    assert plan[0][0] == "start" and plan[-1][0] == "end"
    for call in (3, 4):
        steps = [s[2] for s in plan if s[0] == "progress" and s[1] == call]
        assert steps == [1.0, 2.0]
        assert ("end", call, False, "ok") in plan
    assert out["plan"]["results"]["a"]["text"] == "done after 2 steps"
    assert info["tool_calls"] == 4
    assert info["tool_s"] > 0 and info["state"] == "exited"


async def test_a_socket_client_follows_tool_progress_and_skips_unknown_events(tmp_path: Path) -> None:
    write_mcp_file({"mcpServers": {"slow": slow_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    sock = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp")) / "k.sock"  # AF_UNIX paths must stay short
    with anyio.fail_after(40):
        async with (
            open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=_plugins()) as kernel,
            serve_socket(kernel, sock) as (path, token),
            SocketClient(path, token) as front,
        ):
            receive = await front.open_events()
            kernel.events.publish(FromTheFuture(0, "a newer kernel's event"))
            pid = await front.spawn("progress-user", "short")
            with receive:
                seen = await _collect(receive, [pid])
    store.close()
    assert not any(type(e).__name__ == "FromTheFuture" for e in seen)  # skipped, and the stream went on
    assert _story(seen, pid) == [
        ("state", "running"),
        ("start", 1, "slow.progress"),
        ("state", "waiting_tool"),
        ("progress", 1, 1.0, 3.0, "step 1 of 3"),
        ("progress", 1, 2.0, 3.0, "step 2 of 3"),
        ("progress", 1, 3.0, 3.0, "step 3 of 3"),
        ("state", "running"),
        ("end", 1, False, "ok"),
    ]
    assert isinstance(seen[-1], ProcessExited) and seen[-1].exit_code == 0


def test_event_wire_form_round_trips_and_tolerates_other_versions(caplog: pytest.LogCaptureFixture) -> None:
    event = ToolProgressed(7, 2, "slow.progress", 1.0, None, None)
    assert event_from_dict(event_to_dict(event)) == event
    newer = {**event_to_dict(event), "eta_s": 3.5}  # a field this side does not know is ignored
    assert event_from_dict(newer) == event
    caplog.set_level("DEBUG", logger="kernel.events")
    assert event_from_dict({"type": "FromTheFuture", "pid": 1, "novelty": "x"}) is None
    assert event_from_dict({"pid": 1}) is None  # no type at all
    older = {"type": "ToolCallFinished", "pid": 1, "call": 1, "tool": "slow.echo"}  # fields missing
    assert event_from_dict(older) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("unknown type 'FromTheFuture'" in m for m in messages)
    assert any("ToolCallFinished" in m and "cannot read" in m for m in messages)


async def test_the_tui_console_shows_a_running_tool_call_as_a_status_line(tmp_path: Path) -> None:
    from tui import make_app

    write_mcp_file({"mcpServers": {"slow": slow_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    app = make_app(config=Config(), runtime=FakeBackend(), store=store, plugins=_plugins())
    lines: list[str] = []
    with anyio.fail_after(40):
        async with app.run_test(size=(120, 40)) as pilot:
            while app.kernel is None:
                await pilot.pause(0.05)
            pid = await app.kernel.spawn("progress-user", "tui")
            app.selected_pid = pid
            info = None
            while info is None or info["state"] != "exited":
                await pilot.pause(0.05)
                line = str(app.agent_console.border_subtitle or "")
                if line and (not lines or lines[-1] != line):
                    lines.append(line)
                info = next(p for p in app.kernel.ps() if p["pid"] == pid)
            await pilot.pause(0.1)
            assert app.agent_console.border_subtitle == ""  # the call ended: the line is gone
    store.close()
    assert lines, "no tool status line was shown"
    progress = [line for line in lines if "/3" in line]
    assert progress and all(line.startswith("⚙ slow.progress ") for line in lines)
    expected = [f"⚙ slow.progress {k}/3 · step {k} of 3" for k in (1, 2, 3)]
    assert progress == [line for line in expected if line in progress]  # in order, each as the server said
