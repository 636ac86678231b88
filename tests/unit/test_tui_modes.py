"""Each TUI mode (Pilot) against a real kernel with the FakeBackend: keys switch modes, every mode shows kernel
data it reads through syscalls as the user, and its actions reach the kernel (spawn, kill, suspend, renice;
search, diff and roll back files; dispatch, watch and cancel a tool plan; filter the audit log)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from _semfs_kit import write_corpus
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static, TextArea, Tree

from aios.config import Config
from kernel.backends.fake import FakeBackend
from memory.store import Store
from tui import AiosApp, make_app
from tui.agents_screen import AgentsScreen, SpawnDialog
from tui.files_screen import ConfirmDialog, FilesScreen
from tui.logs_screen import LogsScreen
from tui.tools_screen import ArgsForm, ToolsScreen, coerce

pytestmark = pytest.mark.anyio


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await pilot.pause(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def running(tmp_path: Path, size: tuple[int, int] = (140, 44)) -> AsyncIterator[tuple[AiosApp, Pilot[None]]]:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(90):
            app = make_app(config=Config(), runtime=FakeBackend(token_delay=0.002), store=store)
            async with app.run_test(size=size) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
                yield app, pilot
    finally:
        store.close()


def rows(table: DataTable[Any]) -> list[list[str]]:
    return [[Text.from_markup(str(c)).plain for c in table.get_row_at(i)] for i in range(table.row_count)]


async def switch(app: AiosApp, pilot: Pilot[None], key: str, mode: str) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: app.current_mode == mode and getattr(app.screen, "ready", False), f"the {mode} mode")


async def test_every_mode_is_on_a_key_and_in_the_command_palette(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot):
        for key, mode in (("f1", "agents"), ("f3", "files"), ("f4", "memory"), ("f5", "tools"), ("f6", "logs")):
            await switch(app, pilot, key, mode)
            assert app.screen.query_one(".mode-bar")  # the bar showing every mode's key
        await switch(app, pilot, "f2", "console")
        commands = [c.title for c in app.get_system_commands(app.screen)]
        for label in ("Agents mode (f1)", "Console mode (f2)", "Files mode (f3)", "Tools mode (f5)", "Logs mode (f6)"):
            assert label in commands
        # The footer shows the current mode's keys.
        keys = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"New agent", "Kill"} <= keys
        # The mouse too: the bar's entries switch modes.
        await pilot.click(".mode-bar", offset=(27, 0))  # " F3 Files "
        await wait_for(pilot, lambda: app.current_mode == "files", "a click on the mode bar")
        await switch(app, pilot, "f5", "tools")
        keys = {b.binding.description for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"Run plan", "Cancel plan"} <= keys and "New agent" not in keys


async def test_agents_mode_spawns_kills_suspends_renices_and_shows_the_engine(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot):
        await switch(app, pilot, "f1", "agents")
        screen = app.screen
        assert isinstance(screen, AgentsScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, SpawnDialog), "the spawn dialog")
        await pilot.press("enter")  # the default agent, no goal: an interactive chat
        await wait_for(pilot, lambda: screen.table.row_count == 1, "the new process's row")
        await wait_for(pilot, lambda: rows(screen.table)[0][4] == "waiting_input", "the agent waiting for input")
        row = rows(screen.table)[0]
        assert row[0] == "1" and row[2:6] == ["-", "chat", "waiting_input", "normal"]
        assert row[1].isdigit()  # the agent runs as an OS process of its own
        tree = screen.query_one("#proc-tree", Tree)
        assert [str(n.label) for n in tree.root.children] == ["1 chat waiting_input"]
        engine = screen.query_one("#engine-stats", Static)
        await wait_for(pilot, lambda: "model fake-model" in str(engine.content), "the engine panel")
        assert "KV" in str(engine.content) and "batch" in str(engine.content)

        await pilot.press("s")
        await wait_for(pilot, lambda: rows(screen.table)[0][4] == "suspended", "suspension")
        await pilot.press("s")
        await wait_for(pilot, lambda: rows(screen.table)[0][4] == "waiting_input", "resumption")
        await pilot.press("r")
        await wait_for(pilot, lambda: rows(screen.table)[0][5] == "background", "the next priority class")
        await pilot.press("f9")  # dark <-> light
        assert app.theme == "textual-light"
        await pilot.press("f9")
        assert app.theme == "textual-dark"
        await pilot.press("k")
        await wait_for(pilot, lambda: rows(screen.table)[0][4] == "exited", "the kill")
        assert app.kernel is not None and app.kernel.ps()[0]["exit_code"] == 143


async def test_files_mode_searches_diffs_and_rolls_back_after_confirmation(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    async with running(tmp_path) as (app, pilot):
        await app.call("fs.mount", path=str(root))
        target = root / "notes" / "travel.txt"
        await app.call("fs.write", path=str(target), text="Renew the passport in May.\n")
        await switch(app, pilot, "f3", "files")
        screen = app.screen
        assert isinstance(screen, FilesScreen)
        mounts = screen.query_one("#mounts", Static)
        await wait_for(pilot, lambda: str(root) in str(mounts.content), "the mounts")
        await pilot.press("ctrl+e")  # hybrid -> keyword (no embedding model needed)
        assert str(screen.query_one("#search-mode").value) == "keyword"  # type: ignore[attr-defined]
        await pilot.press(*"passport")  # live: no Enter needed
        results = screen.query_one("#results", DataTable)
        await wait_for(pilot, lambda: results.row_count > 0, "live results")
        assert rows(results)[0][0] == "docs/notes/travel.txt"
        preview = screen.query_one("#preview", Static)
        await wait_for(pilot, lambda: "passport" in str(preview.content).lower(), "the preview")
        versions = screen.query_one("#versions", DataTable)
        await wait_for(pilot, lambda: versions.row_count == 2, "the file's versions")
        assert [r[2] for r in rows(versions)] == ["index", "pid:0"]  # the user principal wrote it
        versions.move_cursor(row=0)
        diff = screen.query_one("#diff", Static)
        await wait_for(pilot, lambda: "-Passport renewal" in str(diff.content), "the diff")

        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("n")  # no: nothing changes
        await wait_for(pilot, lambda: app.screen is screen, "the dialog to close")
        assert target.read_text() == "Renew the passport in May.\n"
        await pilot.press("ctrl+b")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation again")
        await pilot.press("y")
        await wait_for(pilot, lambda: target.read_text().startswith("Passport renewal"), "the rollback")
        await wait_for(pilot, lambda: versions.row_count == 3, "the rollback's version")


async def test_tools_mode_composes_dispatches_watches_and_cancels_plans(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot):
        await switch(app, pilot, "f5", "tools")
        screen = app.screen
        assert isinstance(screen, ToolsScreen)
        servers = screen.query_one("#servers", DataTable)
        tools = screen.query_one("#tools", DataTable)
        await wait_for(pilot, lambda: tools.row_count > 0 and servers.row_count > 0, "servers and tools")
        assert "time" in [r[0] for r in rows(servers)]
        assert "time.now" in [r[0] for r in rows(tools)]

        # Catalog search, then add the best hit to the plan as a step.
        search = screen.query_one("#tool-search", Input)
        search.focus()
        await pilot.press(*"what time is it", "enter")
        await wait_for(pilot, lambda: tools.row_count > 0 and rows(tools)[0][0] == "time.now", "the search result")
        await pilot.press("ctrl+a")  # a form made from time.now's schema
        await wait_for(pilot, lambda: isinstance(app.screen, ArgsForm), "the arguments form")
        form = app.screen
        await wait_for(pilot, lambda: isinstance(app.focused, Input) and app.focused.id == "arg-timezone", "the field")
        await pilot.press(*"Asia/Tokyo", "enter")
        await wait_for(pilot, lambda: app.screen is screen, "the form to close")
        editor = screen.query_one("#plan-json", TextArea)
        assert json.loads(editor.text)["steps"] == [
            {"id": "now", "tool": "time.now", "args": {"timezone": "Asia/Tokyo"}}
        ]
        assert isinstance(form, ArgsForm)

        # A plan with two parallel steps and one after both: dispatched as tool.plan, watched as a DAG.
        plan = {
            "steps": [
                # Long enough that a loaded machine's poll still sees both running (0.3 s flaked in CI).
                {"id": "a", "tool": "time.sleep", "args": {"seconds": 2.0}},
                {"id": "b", "tool": "time.sleep", "args": {"seconds": 2.0}},
                {"id": "c", "tool": "time.now", "args": {"timezone": "UTC"}, "deps": ["a", "b"]},
            ]
        }
        editor.text = json.dumps(plan)
        await pilot.press("ctrl+g")
        dag = screen.query_one("#dag", DataTable)
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.running == 2, "two steps running at once")
        assert [r[3] for r in rows(dag)] == ["running", "running", "waiting"]
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.state == "done", "the plan to finish")
        assert [r[3] for r in rows(dag)] == ["ok", "ok", "ok"]
        # Each server's latency: the mean of the calls seen finishing.
        await wait_for(pilot, lambda: rows(servers)[0][3].endswith("ms"), "the time server's latency")
        assert screen.plan is not None and screen.plan.width == 2
        assert "UTC" in rows(dag)[2][5] or rows(dag)[2][5]
        status = str(screen.query_one("#plan-status", Static).content)
        assert "plan done · 3/3 steps" in status and "max parallel 2" in status

        # A long plan is cancelled from the keyboard: its steps end cancelled, the kernel's call ends too.
        editor.text = json.dumps({"steps": [{"id": "long", "tool": "time.sleep", "args": {"seconds": 30}}]})
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.running == 1, "the long step")
        await pilot.press("ctrl+x")
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.state == "cancelled", "the cancel")
        assert [r[3] for r in rows(dag)] == ["cancelled"]
        calls = app.tool_calls.of(0)
        await wait_for(pilot, lambda: not calls[-1].running, "the kernel to end the call")
        assert calls[-1].outcome == "cancelled"

        # A malformed plan is refused with a clear message and nothing dispatched.
        editor.text = '{"steps": [{"tool": "time.now"}]}'
        await pilot.press("ctrl+g")
        assert screen.plan is not None and screen.plan.state == "cancelled"


async def test_logs_mode_filters_the_audit_log(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot):
        await app.call("tool.call", tool="time.now", args={"timezone": "UTC"})
        await switch(app, pilot, "f6", "logs")
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        audit = screen.query_one("#audit", DataTable)
        await wait_for(pilot, lambda: any(r[3] == "tool.call" for r in rows(audit)), "the tool call's audit row")
        assert "proc.audit" not in {r[3] for r in rows(audit)}  # the TUI's own polling reads are left out
        screen.query_one("#filter-syscall", Input).focus()
        await pilot.press(*"tool.call")
        await wait_for(pilot, lambda: {r[3] for r in rows(audit)} == {"tool.call"}, "the syscall filter")
        assert {r[2] for r in rows(audit)} == {"user"} and {r[5] for r in rows(audit)} == {"allow"}
        screen.query_one("#filter-decision").value = "deny"  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: audit.row_count == 0, "the decision filter")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: audit.row_count > 0, "the filters cleared")
        screen.query_one("#filter-syscall", Input).value = "proc.audit"  # unless asked for
        await wait_for(
            pilot, lambda: audit.row_count > 0 and {r[3] for r in rows(audit)} == {"proc.audit"}, "own reads"
        )


async def test_agents_may_not_read_the_kernels_records(tmp_path: Path) -> None:
    """proc.audit and proc.log are the user's; an agent's call is refused (and audited)."""
    from aios.errors import PermissionDenied

    async with running(tmp_path) as (app, _pilot):
        kernel = app.kernel
        pid = await kernel.spawn("chat", interactive=True)  # type: ignore[union-attr]
        proc = kernel._procs[pid]  # type: ignore[union-attr]
        for name in ("proc.audit", "proc.log"):
            with pytest.raises(PermissionDenied, match="only the user"):
                await kernel.dispatch(proc, name, {})  # type: ignore[union-attr]
        assert (await kernel.dispatch(proc, "proc.engine", {}))["model"] == "fake-model"  # type: ignore[union-attr]


async def test_modes_over_the_socket_and_approvals_from_any_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same flows with the TUI attached to a served kernel: a plan, the engine panel, the audit log; and
    approval requests answered from the Agents mode, one dialog at a time, with the badge counting them."""
    from _access_kit import open_rig

    from tui.approval import ApprovalScreen

    with anyio.fail_after(90):
        async with open_rig(tmp_path, "socket") as rig:
            assert rig.socket is not None
            monkeypatch.setenv("AIOS_SOCKET", str(rig.socket))
            app = make_app(config=Config())
            async with app.run_test(size=(140, 44)) as pilot:
                await wait_for(pilot, lambda: app.door is not None, "the connection")
                assert app.where == "daemon" and "attached to aios serve" in app.sub_title

                await switch(app, pilot, "f5", "tools")
                screen = app.screen
                assert isinstance(screen, ToolsScreen)
                steps = [{"id": i, "tool": "time.sleep", "args": {"seconds": 0.2}} for i in ("a", "b")]
                steps.append({"id": "t", "tool": "task.trees", "args": {}})  # a built-in syscall tool, as the user
                screen.query_one("#plan-json", TextArea).text = json.dumps({"steps": steps})
                await pilot.press("ctrl+g")
                await wait_for(pilot, lambda: screen.plan is not None and screen.plan.state == "done", "the plan")
                assert [r[3] for r in rows(screen.query_one("#dag", DataTable))] == ["ok", "ok", "ok"]

                await switch(app, pilot, "f1", "agents")
                agents = app.screen
                engine = agents.query_one("#engine-stats", Static)
                await wait_for(pilot, lambda: "model fake-model" in str(engine.content), "the engine panel")

                first = await rig.run(rig.kernel.spawn, "asker", "t.ask1")
                await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the first dialog")
                second = await rig.run(rig.kernel.spawn, "asker", "t.ask2")
                await wait_for(pilot, lambda: "2 approvals waiting" in app.sub_title, "the badge")
                dialog = app.screen
                assert isinstance(dialog, ApprovalScreen) and dialog.request.pid == first
                await pilot.press("f3")  # the mode stays put while a dialog waits for its answer
                assert app.current_mode == "agents"
                await pilot.press("o")
                await wait_for(
                    pilot,
                    lambda: isinstance(app.screen, ApprovalScreen) and app.screen.request.pid == second,
                    "the second dialog",
                )
                assert "1 approval waiting" in app.sub_title
                await pilot.press("d")
                assert (await rig.run(rig.kernel.wait, first))["exit_code"] == 0
                assert (await rig.run(rig.kernel.wait, second))["state"] == "failed"
                await wait_for(pilot, lambda: "approval" not in app.sub_title, "the badge to clear")
                await pilot.press("f8")  # nothing waits: F8 says so
                assert not isinstance(app.screen, ApprovalScreen)

                await switch(app, pilot, "f6", "logs")
                audit = app.screen.query_one("#audit", DataTable)
                await wait_for(pilot, lambda: any(r[3] == "tool.call" for r in rows(audit)), "the plan's audit rows")
                calls = [r for r in rows(audit) if r[3] == "tool.call"]
                assert len(calls) == 3 and {r[2] for r in calls} == {"user"}


async def test_files_mode_runs_an_fs_plan_asking_before_destructive_steps(tmp_path: Path) -> None:
    """The fs-ask box's second half (the model's plan is covered by a model-marked test): the plan is shown, its
    destructive steps wait for a yes, and fs.run_plan runs it confirmed or not."""
    root = write_corpus(tmp_path / "docs")
    async with running(tmp_path) as (app, pilot):
        await app.call("fs.mount", path=str(root))
        target = root / "notes" / "travel.txt"
        await app.call("fs.write", path=str(target), text="Renew the passport in May.\n")
        await switch(app, pilot, "f3", "files")
        screen = app.screen
        assert isinstance(screen, FilesScreen)
        plan = {"steps": [{"op": "search", "query": "passport"}, {"op": "rollback", "path": str(target), "steps": 1}]}
        destructive = {"write", "delete", "move", "rollback"}
        outcome: list[list[dict[str, object]]] = []

        async def run() -> None:
            outcome.append(await screen.run_fs_plan(plan, destructive))

        screen.run_worker(run())
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        question = str(app.screen.query_one("#confirm-question").render())
        assert "1 step(s) that change files: rollback" in question
        await pilot.press("n")
        await wait_for(pilot, lambda: bool(outcome), "the plan to run")
        assert [(r["op"], r["status"]) for r in outcome[0]] == [("search", "ok"), ("rollback", "skipped")]
        assert target.read_text() == "Renew the passport in May.\n"
        preview = screen.query_one("#preview", Static)
        assert "rollback" in str(preview.content) and "changes files" in str(preview.content)

        screen.run_worker(run())
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the second confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(outcome) == 2, "the confirmed run")
        assert [(r["op"], r["status"]) for r in outcome[1]] == [("search", "ok"), ("rollback", "ok")]
        assert target.read_text().startswith("Passport renewal")


async def test_console_shows_the_agents_task_path_and_tool_calls_at_the_side(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot):
        await pilot.press(*"Plan a trip", "enter")
        await wait_for(pilot, lambda: "chat: echo: Plan a trip" in app.agent_console.text, "the reply")
        side = app.screen.query_one("#task-path", Static)
        await wait_for(pilot, lambda: "Plan a trip" in str(side.content), "the task path")
        assert app.screen.has_class("-wide")  # 140 columns: the side panel is shown
        # A tool call of the selected process is listed, collapsible, with its outcome.
        from textual.widgets import Collapsible

        from kernel.events import ToolCallFinished, ToolCallStarted

        pid = app.selected_pid
        assert pid is not None
        app._on_kernel_event(ToolCallStarted(pid, 1, "time.now"))
        app._on_kernel_event(ToolCallFinished(pid, 1, "time.now", False, "ok", 0.25))
        await wait_for(pilot, lambda: bool(app.screen.query(Collapsible)), "the tool call")
        (call,) = app.screen.query(Collapsible)
        assert call.title == "✓ time.now ok 0.25s" and call.collapsed


def test_form_fields_are_typed_by_their_schema() -> None:
    from aios.errors import UsageError

    assert coerce("3", {"type": "integer"}) == 3
    assert coerce("0.5", {"type": "number"}) == 0.5
    assert coerce("yes", {"type": "boolean"}) is True
    assert coerce('["a"]', {"type": "array"}) == ["a"]
    assert coerce("x", {}) == "x"
    with pytest.raises(UsageError, match="is not an integer"):
        coerce("three", {"type": "integer"})
    with pytest.raises(UsageError, match="is not an object"):
        coerce("[1]", {"type": "object"})


async def test_console_has_a_tab_per_agent(tmp_path: Path) -> None:
    from textual.widgets import Tab, Tabs

    async with running(tmp_path) as (app, pilot):
        await pilot.press(*"first", "enter")
        await wait_for(pilot, lambda: "chat: echo: first" in app.agent_console.text, "the first reply")
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: app.selected_pid == 2, "the second agent")
        await pilot.press(*"second", "enter")
        await wait_for(pilot, lambda: "chat: echo: second" in app.agent_console.text, "the second reply")
        tabs = app.screen.query_one("#agent-tabs", Tabs)
        assert [str(t.label) for t in tabs.query(Tab)] == ["1 chat", "2 chat"] and tabs.active == "pid-2"
        await pilot.click("#pid-1")
        await wait_for(pilot, lambda: app.selected_pid == 1, "the first agent selected by its tab")
        assert "chat: echo: first" in app.agent_console.text and "second" not in app.agent_console.text
        assert app.process_table.cursor_row == 0  # the table follows
        await pilot.press("ctrl+k")
        await wait_for(pilot, lambda: str(tabs.query_one("#pid-1", Tab).label) == "1 chat ✗", "the ended agent's tab")
