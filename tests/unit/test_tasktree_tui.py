"""The TUI's Memory mode (f4, or ctrl+o from the console): task trees in a Tree widget through ``task.trees``,
a step's details and versions through ``task.show``, memory namespaces through ``mem.namespaces``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import DataTable, Static, Tree

from aios.config import Config
from kernel.backends.fake import FakeBackend
from memory.agent_memory import AgentMemory
from memory.store import Store
from memory.tasktree import TaskTreeStore
from tui import make_app
from tui.memory_view import MemoryScreen

pytestmark = pytest.mark.anyio


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await pilot.pause(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_memory_mode_shows_task_trees_versions_and_namespaces(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(60):
            app = make_app(config=Config(), runtime=FakeBackend(), store=store)
            async with app.run_test(size=(140, 40)) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
                await pilot.press(*"Plan a trip", "enter")
                await wait_for(
                    pilot, lambda: app.procs.get(app.selected_pid or 0, {}).get("state") == "waiting_input", "the reply"
                )
                pid = app.selected_pid
                # the chat agent roots its tree at the conversation's first message; give the tree a step as the
                # agent would leave it after a correction
                tasks = TaskTreeStore(store.db)
                await wait_for(pilot, lambda: bool(tasks.trees(pid=pid)), "the task tree")
                (tree,) = tasks.trees(pid=pid)
                assert tree["title"] == "Plan a trip"
                dest = tasks.add_node(tree["id"], title="Destination", output="Rome", actor="user")
                tasks.update(dest["id"], output="Lisbon", actor=f"agent:chat#{pid}")
                AgentMemory(store.db).stage_core("agent:chat", "human", "Likes trains", actor="user")

                await pilot.press("ctrl+o")  # from the console: the Memory mode
                await wait_for(pilot, lambda: isinstance(app.screen, MemoryScreen), "the memory mode")
                screen = app.screen
                assert isinstance(screen, MemoryScreen) and app.current_mode == "memory"
                widget = screen.query_one("#task-tree", Tree)

                def step_labels() -> list[str]:
                    branches = [b for b in widget.root.children if f"t{tree['id']}" in str(b.label)]
                    if not branches or not branches[0].children:
                        return []
                    return [str(n.label) for n in branches[0].children[0].children]

                await wait_for(pilot, lambda: bool(step_labels()), "the tree's steps")
                assert step_labels() == [f"▶ n{dest['id']} [pending] Destination: Lisbon"]
                namespaces = screen.query_one("#namespaces", DataTable)
                await wait_for(pilot, lambda: namespaces.row_count > 0, "the namespaces")
                assert "agent:chat" in [str(namespaces.get_row_at(i)[0]) for i in range(namespaces.row_count)]

                branch = next(b for b in widget.root.children if f"t{tree['id']}" in str(b.label))
                widget.move_cursor(branch.children[0].children[0])

                def detail() -> str:
                    return Text.from_markup(str(screen.query_one("#node-detail", Static).content)).plain

                await wait_for(pilot, lambda: "v2 [pending] Lisbon" in detail(), "the step's versions")
                assert "output: Lisbon" in detail()
                assert "v1 [pending] Rome · user · create" in detail()
                assert f"v2 [pending] Lisbon · agent:chat#{pid} · update" in detail()

                await pilot.press("f2")  # back to the console
                await wait_for(pilot, lambda: app.current_mode == "console", "the console mode")
    finally:
        store.close()
