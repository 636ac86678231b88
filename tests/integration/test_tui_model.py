"""The TUI on the real bundled model (marker: model): a typed prompt gets a streamed reply from the model, and
the Files mode's ask box turns a request into the model's grammar-constrained plan, shown and run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from aios.config import Config, LLMConfig
from kernel import load_runtime
from memory.store import Store
from tests.unit._semfs_kit import write_corpus
from tui import make_app
from tui.files_screen import FilesScreen
from tui.tools_screen import GoalDialog, ToolsScreen

pytestmark = [pytest.mark.model, pytest.mark.anyio]


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await pilot.pause(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_the_tui_on_the_bundled_model(tmp_path: Path) -> None:
    config = Config(llm=LLMConfig(n_ctx=2048, temperature=0.0))
    runtime = load_runtime(config)
    root = write_corpus(tmp_path / "docs")
    store = Store.open(tmp_path / "aios.db")
    try:
        app = make_app(config=config, runtime=runtime, store=store)
        async with app.run_test(size=(140, 44)) as pilot:
            await wait_for(pilot, lambda: app.door is not None, "the kernel")
            assert app.sub_title.endswith("in-process") and "fake" not in app.sub_title
            await pilot.press(*"Name a colour.", "enter")
            await wait_for(
                pilot,
                lambda: (
                    app.procs.get(app.selected_pid or 0, {}).get("state") == "waiting_input"
                    and "chat: " in app.agent_console.text
                ),
                "the model's reply",
            )
            reply = app.agent_console.text.split("chat: ", 1)[1].strip()
            assert reply and not reply.startswith("echo:")

            await app.call("fs.mount", path=str(root))
            await pilot.press("f3")
            await wait_for(pilot, lambda: isinstance(app.screen, FilesScreen) and app.screen.ready, "the files mode")
            screen = app.screen
            assert isinstance(screen, FilesScreen)
            ask = screen.query_one("#fs-ask", Input)
            ask.value = "find my notes about the garden"
            ask.focus()
            await pilot.press("enter")
            preview = screen.query_one("#preview", Static)
            await wait_for(pilot, lambda: "results" in str(preview.content), "the plan to run")
            assert "plan" in str(preview.content)

            # The planner writes a tool plan from a goal (tool.propose), into the Tools mode's editor.
            await pilot.press("f5")
            await wait_for(pilot, lambda: isinstance(app.screen, ToolsScreen) and app.screen.ready, "the tools mode")
            tools = app.screen
            assert isinstance(tools, ToolsScreen)
            await pilot.press("ctrl+w")
            await wait_for(pilot, lambda: isinstance(app.screen, GoalDialog), "the goal dialog")
            await pilot.press(*"what time is it in Tokyo", "enter")
            status = tools.query_one("#plan-status", Static)
            await wait_for(pilot, lambda: "the planner's plan" in str(status.content), "the planner's plan")
            steps = json.loads(tools.query_one("#plan-json", TextArea).text)["steps"]
            assert steps and all("tool" in s for s in steps)
    finally:
        store.close()
