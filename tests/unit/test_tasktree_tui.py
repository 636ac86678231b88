"""The TUI's Memory view (ctrl+o): the selected agent's task tree in a Tree widget, node details, versions."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from rich.text import Text
from textual.widgets import Static, Tree

from aios.config import Config
from kernel.backends.fake import FakeBackend
from memory.agent_memory import AgentMemory
from memory.store import Store
from memory.tasktree import TaskTreeStore
from tui import make_app
from tui.memory_view import MemoryView

pytestmark = pytest.mark.anyio


async def test_memory_view_shows_the_selected_agents_tree_and_versions(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(30):
            app = make_app(config=Config(), runtime=FakeBackend(), store=store)
            async with app.run_test(size=(140, 40)) as pilot:
                while app.kernel is None:
                    await pilot.pause(0.05)
                await pilot.press(*"Plan a trip", "enter")
                while app.selected_pid is None or app.selected_pid not in app.process_table.pids:
                    await pilot.pause(0.05)
                pid = app.selected_pid
                # the chat agent roots its tree at the conversation's first message; once it has answered, give
                # the tree a step as the agent would leave it after a correction
                tasks = TaskTreeStore(store.db)
                while not tasks.trees(pid=pid) or app.kernel.info(pid)["state"] != "waiting_input":
                    await pilot.pause(0.05)
                (tree,) = tasks.trees(pid=pid)
                assert tree["title"] == "Plan a trip"
                dest = tasks.add_node(tree["id"], title="Destination", output="Rome", actor="user")
                tasks.update(dest["id"], output="Lisbon", actor=f"agent:chat#{pid}")
                AgentMemory(store.db).stage_core("agent:chat", "human", "Likes trains", actor="user")

                await pilot.press("ctrl+o")
                screen = app.screen
                assert isinstance(screen, MemoryView) and screen.pid == pid and screen.agent == "chat"
                widget = screen.query_one("#task-tree", Tree)
                labels = [str(n.label) for n in widget.root.children[0].children[0].children]
                assert labels == [f"▶ n{dest['id']} [done] Destination: Lisbon".replace("[done]", "[pending]")]
                assert "Likes trains" in str(screen.query_one("#core-memory", Static).content)
                detail = Text.from_markup(screen.detail(dest["id"])).plain
                assert "v1 [pending] Rome · user · create" in detail
                assert f"v2 [pending] Lisbon · agent:chat#{pid} · update" in detail
                widget.move_cursor(widget.root.children[0].children[0].children[0])
                await pilot.pause(0.1)
                shown = Text.from_markup(str(screen.query_one("#node-detail", Static).content)).plain
                assert "output: Lisbon" in shown and "versions" in shown
                await pilot.pause(0.5)  # the main screen's timers keep running underneath
                await pilot.press("escape")
                assert not isinstance(app.screen, MemoryView)
    finally:
        store.close()
