"""The TUI's approval dialog (Pilot): an agent's ask opens the modal, the keys answer it, and a request that
is answered elsewhere closes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import agent_classes
from textual.pilot import Pilot

from aios import Agent
from aios.config import Config
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel.backends.fake import FakeBackend
from kernel.events import ApprovalResolved
from kernel.policy import PolicyStore
from memory.store import Store
from tui import AiosApp, make_app
from tui.approval import ApprovalScreen

pytestmark = pytest.mark.anyio


def app_for(tmp_path: Path) -> tuple[AiosApp, Store]:
    root = tmp_path / "files"
    (root / "granted" / "rw").mkdir(parents=True)

    class Extras:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return agent_classes(root)

    plugins = PluginManager(load_entry_points=False)
    plugins.register(Extras(), name="access-kit")
    store = Store.open(tmp_path / "aios.db")
    config = Config()
    config.access.approval_timeout_s = 30
    return make_app(config=config, runtime=FakeBackend(), store=store, plugins=plugins), store


def _drain(events: Any) -> list[Any]:
    out = []
    while True:
        try:
            out.append(events.receive_nowait())
        except anyio.WouldBlock:
            return out


def dialog_ready(app: AiosApp) -> bool:
    """The approval dialog is on top, mounted, and has focus (so keys reach it)."""
    focused = app.focused
    return isinstance(app.screen, ApprovalScreen) and focused is not None and focused.id == "deny"


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    try:
        with anyio.fail_after(10):
            while not condition():
                await pilot.pause(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_the_modal_answers_approvals(tmp_path: Path) -> None:
    app, store = app_for(tmp_path)
    with anyio.fail_after(30):
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
            kernel = app.kernel
            assert kernel is not None

            pid = await kernel.spawn("asker", "t.ask1")
            await wait_for(pilot, lambda: dialog_ready(app), "the approval dialog")
            dialog = app.screen
            assert isinstance(dialog, ApprovalScreen)
            assert dialog.request.pid == pid and dialog.request.resource == "tool:t.ask1"
            assert "t.ask1" in str(dialog.query_one("#approval-resource").render())
            assert kernel.ps()[0]["state"] == "waiting_approval"
            await pilot.press("o")
            info = await kernel.wait(pid)
            assert (info["exit_code"], info["result"]) == (0, "{'touched': 'tool:t.ask1'}")
            assert not isinstance(app.screen, ApprovalScreen)

            # "Deny always": the process is refused, and the answer is remembered.
            pid = await kernel.spawn("asker", "t.ask2")
            await wait_for(pilot, lambda: dialog_ready(app), "the second dialog")
            await pilot.press("n")
            info = await kernel.wait(pid)
            assert info["state"] == "failed" and "always deny" in info["error"]
            assert [(r.resource, r.decision) for r in PolicyStore().rules()] == [("tool:t.ask2", "deny")]

            # Buttons work too.
            pid = await kernel.spawn("asker", "t.ask3")
            await wait_for(pilot, lambda: dialog_ready(app), "the third dialog")
            await pilot.click("#allow_once")
            assert (await kernel.wait(pid))["exit_code"] == 0

            # Answered from elsewhere (another front end): the dialog closes by itself.
            pid = await kernel.spawn("asker", "t.ask4")
            await wait_for(pilot, lambda: dialog_ready(app), "the fourth dialog")
            await kernel.approve(kernel.approvals()[0]["id"], "deny", by="cli")
            await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalScreen), "the dialog to close")
            assert (await kernel.wait(pid))["state"] == "failed"
    store.close()


async def test_other_terminals_reach_the_tuis_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import shutil
    import tempfile

    from click.testing import CliRunner

    from aios.cli import cli

    sock_dir = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp"))
    monkeypatch.setenv("AIOS_SOCKET", str(sock_dir / "k.sock"))
    app, store = app_for(tmp_path)

    async def invoke(*args: str, stdin: str | None = None) -> Any:
        return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args), input=stdin))

    try:
        with anyio.fail_after(30):
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
                kernel = app.kernel
                assert kernel is not None and (sock_dir / "k.sock").exists()
                pid = await kernel.spawn("alpha", interactive=True)
                ps = await invoke("ps", "--json")
                assert [p["pid"] for p in json.loads(ps.stdout)["processes"]] == [pid]
                # Both the TUI and a terminal watch approvals; the terminal answers, the TUI's dialog closes.
                outcome: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:

                    async def watch() -> None:
                        outcome["watch"] = await invoke("approvals", "watch", "-n", "1", stdin="o\n")

                    tg.start_soon(watch)
                    await wait_for(pilot, lambda: len(kernel.events._approvers) >= 2, "the terminal to attach")
                    events = kernel.subscribe()
                    asker = await kernel.spawn("asker", "t.ask7")
                    info = await kernel.wait(asker)
                assert info["exit_code"] == 0, outcome["watch"].output
                resolved = [e for e in _drain(events) if isinstance(e, ApprovalResolved)]
                assert [(e.pid, e.decision, e.by) for e in resolved] == [(asker, "allow_once", "cli")]
                await wait_for(pilot, lambda: not isinstance(app.screen, ApprovalScreen), "the dialog to close")
                assert (await invoke("kill", str(pid))).exit_code == 0
                assert (await kernel.wait(pid))["exit_code"] == 143
    finally:
        store.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


async def test_a_second_tui_drives_the_running_kernel_over_the_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _access_kit import open_rig
    from textual.widgets import Input

    from aios.client import SocketClient

    with anyio.fail_after(40):
        async with open_rig(tmp_path, "socket") as rig:
            assert rig.socket is not None
            monkeypatch.setenv("AIOS_SOCKET", str(rig.socket))
            app = make_app(config=Config())
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the connection")
                assert isinstance(app.kernel, SocketClient)
                assert app.sub_title == "fake-model · attached to aios serve"
                assert app.where == "daemon"
                app.query_one("#prompt", Input).focus()
                await pilot.press(*"hello", "enter")
                await wait_for(pilot, lambda: "chat: echo: hello" in "\n".join(app.agent_console.lines), "the reply")
                assert [p["agent"] for p in rig.kernel.ps()] == ["chat"]  # it runs in the daemon's kernel
                # Its approvals are answered from this TUI too.
                asker = await rig.run(rig.kernel.spawn, "asker", "t.ask5")
                await wait_for(pilot, lambda: dialog_ready(app), "the dialog")
                await pilot.press("o")
                info = await rig.run(rig.kernel.wait, asker)
                assert info["exit_code"] == 0


async def test_a_request_waiting_before_the_tui_attached_is_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from _access_kit import open_rig

    config = Config()
    config.access.headless_timeout_s = 60  # nobody attached yet: the request waits instead of being denied
    with anyio.fail_after(40):
        async with open_rig(tmp_path, "socket", config=config) as rig:
            assert rig.socket is not None
            monkeypatch.setenv("AIOS_SOCKET", str(rig.socket))
            asker = await rig.run(rig.kernel.spawn, "asker", "t.ask8")
            while not rig.kernel.approvals():
                await anyio.sleep(0.02)
            app = make_app(config=Config())
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: dialog_ready(app), "the dialog for the earlier request")
                assert "1 approval waiting" in app.sub_title
                await pilot.press("o")
                assert (await rig.run(rig.kernel.wait, asker))["exit_code"] == 0
                await wait_for(pilot, lambda: "approval" not in app.sub_title, "the badge to clear")
