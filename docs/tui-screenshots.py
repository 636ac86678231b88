"""Regenerate the README's TUI screenshots (docs/tui-<mode>.svg, Textual's SVG export) from a real kernel with
the FakeBackend and a little data: agents that have talked, a mounted folder with an edited file, a finished
tool plan, an approval request.

    python docs/tui-screenshots.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE = (120, 34)


async def main() -> None:
    from textual.css.query import NoMatches
    from textual.pilot import Pilot
    from textual.widgets import DataTable, Input, Static, TextArea

    from aios.config import Config
    from kernel.backends.fake import FakeBackend
    from kernel.events import ApprovalRequested
    from memory.store import Store
    from tui import make_app
    from tui.approval import ApprovalScreen

    home = Path(tempfile.mkdtemp(prefix="aios-shots-", dir="/tmp"))
    os.environ["AIOS_HOME"] = str(home)
    os.environ["AIOS_SOCKET"] = str(home / "k.sock")
    notes = home / "notes"
    (notes / "trips").mkdir(parents=True)
    (notes / "garden.md").write_text("# Garden\n\nTomatoes need full sun.\n\n## Pests\n\nAphids: soapy water.\n")
    (notes / "trips" / "lisbon.md").write_text("# Lisbon\n\nTrain from Madrid, then the tram 28 to Alfama.\n")
    store = Store.open(home / "aios.db")
    app = make_app(config=Config(), runtime=FakeBackend(token_delay=0.002), store=store)

    async def until(pilot: Pilot[None], condition: Callable[[], bool]) -> None:
        with anyio.fail_after(30):
            while True:
                try:
                    if getattr(app.screen, "ready", True) and condition():
                        return
                except NoMatches:  # the mode is still mounting
                    pass
                await pilot.pause(0.05)

    async def shot(pilot: Pilot[None], name: str) -> None:
        await pilot.pause(0.5)
        (ROOT / "docs" / f"tui-{name}.svg").write_text(app.export_screenshot(title=f"aios · {name}"))

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.door is not None)
        await app.call("fs.mount", path=str(notes))
        lisbon = notes / "trips" / "lisbon.md"
        await app.call("fs.write", path=str(lisbon), text="# Lisbon\n\nFly to Lisbon, then the tram 28 to Alfama.\n")
        for text in ("Plan a trip to Lisbon", "What should I pack?"):
            app.query_one("#prompt", Input).value = text
            await pilot.press("enter")
            await until(pilot, lambda text=text: f"echo: {text}" in app.agent_console.text)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: app.agent_console.text == "")
        kernel = app.kernel
        assert kernel is not None
        await kernel.suspend(2)
        await kernel.nice(1, "high")
        app.selected_pid = 1
        await until(pilot, lambda: "Lisbon" in app.agent_console.text)
        await shot(pilot, "console")

        app.action_mode("agents")
        await until(pilot, lambda: "model fake-model" in str(app.screen.query_one("#engine-stats", Static).content))
        await shot(pilot, "agents")

        app.action_mode("files")
        await until(pilot, lambda: "notes" in str(app.screen.query_one("#mounts", Static).content))
        await pilot.press("ctrl+e")
        await pilot.press(*"tram")
        versions = app.screen.query_one("#versions", DataTable)
        await until(pilot, lambda: versions.row_count == 2)
        versions.move_cursor(row=0)
        await until(pilot, lambda: "tram" in str(app.screen.query_one("#diff", Static).content))
        await shot(pilot, "files")

        app.action_mode("memory")
        await until(pilot, lambda: app.screen._shape is not None)  # type: ignore[attr-defined]
        await shot(pilot, "memory")

        app.action_mode("tools")
        screen = app.screen
        await until(pilot, lambda: screen.query_one("#tools", DataTable).row_count > 0)
        plan = {
            "steps": [
                {"id": "now", "tool": "time.now", "args": {"timezone": "Europe/Lisbon"}},
                {"id": "wait_a", "tool": "time.sleep", "args": {"seconds": 0.3}},
                {"id": "wait_b", "tool": "time.sleep", "args": {"seconds": 0.3}},
                {
                    "id": "find",
                    "tool": "fs.search",
                    "args": {"query": "tram", "mode": "keyword"},
                    "deps": ["wait_a", "wait_b"],
                },
            ]
        }
        screen.query_one("#plan-json", TextArea).text = json.dumps(plan, indent=1)
        await pilot.press("ctrl+g")
        await until(pilot, lambda: screen.plan is not None and screen.plan.state != "running")  # type: ignore[attr-defined]
        await shot(pilot, "tools")

        app.action_mode("logs")
        await until(pilot, lambda: app.screen.query_one("#audit", DataTable).row_count > 3)
        await shot(pilot, "logs")

        request = ApprovalRequested(
            3,
            request_id="r1",
            agent="coder",
            syscall="tool.call",
            resource="tool:git.git_commit",
            reason="tool git.git_commit needs approval",
            timeout_s=60,
        )
        app.action_mode("agents")
        await pilot.pause(0.3)
        await app.push_screen(ApprovalScreen(request))
        await shot(pilot, "approval")
        await kernel.resume(2)
    store.close()


if __name__ == "__main__":
    anyio.run(main)
