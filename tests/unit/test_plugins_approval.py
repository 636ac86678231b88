"""First run of a third-party agent: the kernel shows what its manifest declares for approval, once; "always"
(or `aios plugins approve`) records it in config.toml, a changed capability set asks again, and a denied or
unanswered approval fails that spawn with one line naming the plugin. Built-in agents never ask.

Real kernel (FakeBackend), a real one-file plugin in the test's AIOS_HOME, its agent in its own worker process,
the real config file; the approvals are answered through the kernel's approval API as a front end would."""

from __future__ import annotations

import json
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from aios import paths
from aios.config import Config
from aios.plugin_manager import BUILTIN_PLUGINS, PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.events import ApprovalRequested, KernelEvent, ProcessExited
from kernel.kernel import Kernel
from memory.store import Store

pytestmark = pytest.mark.anyio

PLUGIN = """
from aios import Agent, Capabilities, Context, Manifest, hookimpl


class Notes(Agent):
    manifest = Manifest(
        name="notes",
        description="keeps notes",
        capabilities=Capabilities(tools=("files.search",), files_read=("{folder}",), memory_write=("notes",),
                                  llm_token_budget=500, network={network}),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        return "noted: " + goal


@hookimpl
def register_agents():
    return [Notes]
"""


def install(aios_home: Path, folder: Path, *, network: bool = False) -> None:
    plugins = paths.plugins_dir()
    plugins.mkdir(parents=True, exist_ok=True)
    (plugins / "notes_plugin.py").write_text(PLUGIN.format(folder=folder, network=network))


def approvals_in_config() -> dict[str, Any]:
    path = paths.config_path()
    if not path.exists():
        return {}
    return dict(tomllib.loads(path.read_text()).get("plugins", {}).get("approved", {}))


@asynccontextmanager
async def kernel_on(tmp_path: Path, headless_s: float = 10.0) -> AsyncIterator[Kernel]:
    config = Config()
    config.access.headless_timeout_s = headless_s
    manager = PluginManager(load_entry_points=False)
    assert not manager.failures, manager.failures
    store = Store.open(tmp_path / "aios.db")
    try:
        async with open_kernel(config, runtime=FakeBackend(), store=store, plugins=manager) as kernel:
            yield kernel
    finally:
        store.close()


async def run_answering(kernel: Kernel, answer: str | None) -> tuple[dict[str, Any], list[ApprovalRequested]]:
    """Spawn ``notes`` with an approver attached that answers every approval with ``answer``; (its final
    process info, the approval requests it raised)."""
    asked: list[ApprovalRequested] = []
    with kernel.subscribe(approver=True) as events:
        pid = await kernel.spawn("notes", "buy milk")
        event: KernelEvent
        async for event in events:
            if isinstance(event, ApprovalRequested) and event.pid == pid:
                asked.append(event)
                assert answer is not None, f"asked unexpectedly: {event.reason}"
                await kernel.approve(event.request_id, answer, by="test")
            if isinstance(event, ProcessExited) and event.pid == pid:
                break
    return await kernel.wait(pid), asked


async def test_first_run_asks_always_records_and_the_next_run_does_not_ask(aios_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "notes-folder"
    install(aios_home, folder)
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            info, asked = await run_answering(kernel, "allow_always")
            audit = await anyio.to_thread.run_sync(lambda: kernel.audit_rows(agent="notes"))
    assert info["state"] == "exited" and info["result"] == "noted: buy milk", info.get("error")
    assert len(asked) == 1
    request = asked[0]
    assert request.syscall == "plugin.approve" and "notes_plugin" in request.resource
    # the prompt shows every declared capability
    for shown in ("files.search", str(folder), "memory_write=notes", "llm_token_budget=500", "'notes'"):
        assert shown in request.reason, request.reason
    recorded = approvals_in_config()
    assert set(recorded) == {"notes"} and recorded["notes"]["plugin"] == "notes_plugin"
    assert len(recorded["notes"]["digest"]) == 64
    assert any(r["syscall"] == "plugin.approve" and r["decision"] == "allow" for r in audit)
    assert not (paths.config_dir() / "policy.json").exists()  # recorded in config.toml, not as a policy rule
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:  # a new kernel reads the record: no question
            info, asked = await run_answering(kernel, None)
    assert info["state"] == "exited" and info["result"] == "noted: buy milk", info.get("error")
    assert asked == []


async def test_changed_capabilities_ask_again_and_a_deny_fails_in_one_line(aios_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "notes-folder"
    install(aios_home, folder)
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            await run_answering(kernel, "allow_always")
    before = approvals_in_config()["notes"]
    install(aios_home, folder, network=True)  # the new version also wants the network
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            info, asked = await run_answering(kernel, "deny")
    assert len(asked) == 1 and "network=True" in asked[0].reason
    assert info["state"] == "failed" and info["result"] is None
    error = info["error"]
    assert "\n" not in error and "'notes_plugin'" in error and "not approved" in error, error
    assert "denied by test" in error and "aios plugins approve notes" in error
    assert not info.get("os_pid"), "the plugin's worker must not start before the approval"
    assert approvals_in_config()["notes"] == before  # nothing recorded for the denied set


async def test_deny_on_first_run_records_nothing_and_allow_once_asks_again(aios_home: Path, tmp_path: Path) -> None:
    install(aios_home, tmp_path / "notes-folder")
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            denied, _ = await run_answering(kernel, "deny_always")
            once, asked_once = await run_answering(kernel, "allow_once")
            again, asked_again = await run_answering(kernel, "allow_once")
    assert denied["state"] == "failed" and "not approved" in denied["error"]
    assert approvals_in_config() == {}
    assert not (paths.config_dir() / "policy.json").exists()
    assert once["state"] == "exited" and again["state"] == "exited"
    assert len(asked_once) == 1 and len(asked_again) == 1  # "once" is for that run only


async def test_headless_the_spawn_fails_naming_the_plugin_and_the_way_out(aios_home: Path, tmp_path: Path) -> None:
    install(aios_home, tmp_path / "notes-folder")
    with anyio.fail_after(60):
        async with kernel_on(tmp_path, headless_s=0.2) as kernel:
            info = await kernel.wait(await kernel.spawn("notes", "x"))
    assert info["state"] == "failed"
    assert "'notes_plugin'" in info["error"] and "headless" in info["error"], info["error"]
    assert "aios plugins approve notes" in info["error"]


async def test_aios_plugins_approve_records_it_and_the_run_does_not_ask(aios_home: Path, tmp_path: Path) -> None:
    from aios.cli import cli

    install(aios_home, tmp_path / "notes-folder")
    runner = CliRunner()
    unknown = runner.invoke(cli, ["plugins", "approve", "nosuch"])
    assert unknown.exit_code != 0 and "no agent or plugin named 'nosuch'" in unknown.output
    builtin = runner.invoke(cli, ["plugins", "approve", "chat"])
    assert builtin.exit_code == 0 and "needs no approval" in builtin.output, builtin.output
    assert approvals_in_config() == {}
    info = runner.invoke(cli, ["plugins", "info", "notes", "--json"])
    assert json.loads(info.output)["agents"][0]["approval"] == "not approved"
    done = runner.invoke(cli, ["plugins", "approve", "notes_plugin"])  # by plugin name: all its agents
    assert done.exit_code == 0, done.output
    assert "approved notes" in done.output and "files.search" in done.output
    assert set(approvals_in_config()) == {"notes"}
    assert "approval: approved" in runner.invoke(cli, ["plugins", "info", "notes"]).output
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            ran, asked = await run_answering(kernel, None)
    assert ran["state"] == "exited" and asked == []
    install(aios_home, tmp_path / "notes-folder", network=True)
    assert "approval: changed" in runner.invoke(cli, ["plugins", "info", "notes"]).output
    assert "approval: built-in" in runner.invoke(cli, ["plugins", "info", "chat"]).output


def test_built_in_and_directly_registered_agents_need_no_approval(aios_home: Path) -> None:
    manager = PluginManager(load_entry_points=False)
    builtins = [a for a in manager.agents() if manager.plugin_of(a) in BUILTIN_PLUGINS]
    assert "chat" in builtins and "planner" in builtins
    assert all(manager.approval_subject(a) is None for a in builtins)


# -- ctx.request answered "always": remembered in the policy file, settled without asking in later runs --------


async def _request_answering(rig: Any, caller: Any, answer: str | None, **ask: Any) -> tuple[bool, int]:
    """``caller.request(**ask)`` with an approver answering ``answer``; (granted, how many times it was asked)."""
    asked = 0
    out: dict[str, bool] = {}
    with rig.kernel.subscribe(approver=True) as events:

        async def answer_all() -> None:
            nonlocal asked
            async for event in events:
                if isinstance(event, ApprovalRequested):
                    asked += 1
                    assert answer is not None, f"asked unexpectedly: {event.reason}"
                    await rig.kernel.approve(event.request_id, answer, by="test")

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_all)
            out["granted"] = await caller.request(**ask)
            tg.cancel_scope.cancel()
    return out["granted"], asked


async def test_request_answered_always_persists_across_kernels(aios_home: Path, tmp_path: Path) -> None:
    from _access_kit import open_rig

    from aios.errors import PermissionDenied

    with anyio.fail_after(30):
        async with open_rig(tmp_path / "one") as rig:
            elsewhere = rig.root / "elsewhere"
            elsewhere.mkdir()
            (elsewhere / "report.txt").write_text("quarterly numbers")
            _, beta = await rig.agent("beta")
            granted, asked = await _request_answering(rig, beta, "allow_always", path=str(elsewhere), reason="why")
            assert (granted, asked) == (True, 1)
            denied, asked = await _request_answering(rig, beta, "deny_always", tool="t.push")
            assert (denied, asked) == (False, 1)
        report = elsewhere / "report.txt"
        async with open_rig(tmp_path / "two") as rig:  # a new kernel, the same config dir: nobody is asked
            _, beta = await rig.agent("beta")
            with pytest.raises(PermissionDenied):  # remembered answers settle requests; they grant nothing alone
                await beta.call("proc.test_read", path=str(report))
            assert await _request_answering(rig, beta, None, path=str(report)) == (True, 0)  # inside the folder
            assert await beta.call("proc.test_read", path=str(report)) == "quarterly numbers"
            assert await _request_answering(rig, beta, None, tool="t.push") == (False, 0)
            with pytest.raises(PermissionDenied):
                await beta.call("proc.test_touch", kind="tool", target="t.push")
            # a read remembered is not a write, and another agent inherits nothing: both are asked
            assert await _request_answering(rig, beta, "deny", path=str(report), write=True) == (False, 1)
            _, alpha = await rig.agent("alpha")
            assert await _request_answering(rig, alpha, "deny", path=str(report)) == (False, 1)
            rows = await anyio.to_thread.run_sync(lambda: rig.kernel.audit_rows(agent="beta"))
            settled = [r for r in rows if r["syscall"] == "proc.request" and "chose always" in r["reason"]]
            assert {r["decision"] for r in settled} == {"allow", "deny"}


async def test_the_tui_dialog_shows_the_declared_capabilities_and_a_records_it(aios_home: Path, tmp_path: Path) -> None:
    from test_approvals_tui import dialog_ready, wait_for

    from tui import make_app
    from tui.approval import ApprovalScreen

    folder = tmp_path / "notes-folder"
    install(aios_home, folder)
    store = Store.open(tmp_path / "aios.db")
    config = Config()
    config.access.approval_timeout_s = 30
    app = make_app(config=config, runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False))
    try:
        with anyio.fail_after(60):
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
                kernel = app.kernel
                assert kernel is not None
                pid = await kernel.spawn("notes", "buy milk")
                await wait_for(pilot, lambda: dialog_ready(app), "the approval dialog")
                dialog = app.screen
                assert isinstance(dialog, ApprovalScreen)
                reason = str(dialog.query_one("#approval-reason").render())
                for shown in ("notes_plugin", "files.search", "llm_token_budget=500"):
                    assert shown in reason, reason
                assert "has not started" in str(dialog.query_one("#approval-note").render())
                await pilot.press("a")
                info = await kernel.wait(pid)
                assert info["state"] == "exited" and info["result"] == "noted: buy milk", info.get("error")
    finally:
        store.close()
    assert set(approvals_in_config()) == {"notes"}


def _aios_run_on_a_terminal(env: dict[str, str], key: str) -> tuple[int, str, str]:
    """`aios run notes ...` with a terminal (a pty) on stdin and stderr, answering its approval prompt with ``key``;
    (exit code, stdout, what the terminal showed)."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aios", "run", "notes", "buy", "milk"],
        env=env,
        stdin=slave,
        stderr=slave,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    shown, answered = b"", False
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    shown += os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
            if not answered and b"[o]nce" in shown:
                os.write(master, f"{key}\n".encode())
                answered = True
        out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return proc.returncode, out, shown.decode(errors="replace")


def test_aios_run_asks_on_the_terminal_once(aios_home: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    install(aios_home, tmp_path / "notes-folder")
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    env = {**os.environ, "AIOS_HOME": str(aios_home), "AIOS_SOCKET": str(tmp_path / "none.sock")}
    code, _, shown = _aios_run_on_a_terminal(env, "d")
    assert code != 0 and "first run of plugin 'notes_plugin'" in shown and "files.search" in shown, shown
    failure = [line for line in shown.splitlines() if "failed" in line]
    assert len(failure) == 1 and "not approved" in failure[0] and "aios plugins approve notes" in failure[0], shown
    assert approvals_in_config() == {}
    code, _, shown = _aios_run_on_a_terminal(env, "a")
    assert code == 0, shown
    assert set(approvals_in_config()) == {"notes"}
    assert '[llm]\nbackend = "fake"' in paths.config_path().read_text()  # the rest of the file is kept
    again = subprocess.run(  # no terminal now: nothing to ask, and nothing needs asking
        [sys.executable, "-m", "aios", "run", "notes", "x"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "approval needed" not in again.stderr, again.stderr


async def test_no_syscall_is_served_before_the_approval(aios_home: Path, tmp_path: Path) -> None:
    from aios.errors import PermissionDenied
    from kernel.context import ProcessContext

    install(aios_home, tmp_path / "notes-folder")
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            with kernel.subscribe(approver=True) as events:
                pid = await kernel.spawn("notes", "x")
                request: ApprovalRequested | None = None
                async for event in events:
                    if isinstance(event, ApprovalRequested) and event.pid == pid:
                        request = event
                        break
                assert request is not None
                # whoever holds its token (an outside agent program) gets nothing while the user decides
                with pytest.raises(PermissionDenied, match="not approved yet"):
                    await ProcessContext(kernel, kernel._procs[pid]).call("proc.self")
                await kernel.approve(request.request_id, "allow_once", by="test")
                info = await kernel.wait(pid)
    assert info["state"] == "exited", info.get("error")
    assert kernel._unapproved == set()


async def test_an_approved_plugin_is_served_from_the_moment_it_is_spawned(aios_home: Path, tmp_path: Path) -> None:
    """An approval already recorded: whoever holds the new process's token is served at once, not refused in
    the moment before the kernel's task for the process re-reads config.toml."""
    from kernel.context import ProcessContext

    install(aios_home, tmp_path / "notes-folder")
    PluginManager(load_entry_points=False).approve("notes")
    with anyio.fail_after(60):
        async with kernel_on(tmp_path) as kernel:
            pid = await kernel.spawn("notes", "x")
            me = await ProcessContext(kernel, kernel._procs[pid]).call("proc.self")  # no await in between
            info = await kernel.wait(pid)
    assert me["pid"] == pid and info["state"] == "exited", info.get("error")
