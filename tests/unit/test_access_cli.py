"""The CLI against a running daemon (`aios ps/kill/suspend/resume/nice/audit/policy/approvals`), the TTY
approval prompt, and the same commands with no daemon running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import open_rig
from click.testing import CliRunner, Result

from aios.cli import cli
from aios.cli_access import prompt_approvals
from aios.config import Config
from kernel.policy import PolicyStore

pytestmark = pytest.mark.anyio


async def invoke(args: list[str], stdin: str | None = None) -> Result:
    """Run the CLI in a worker thread (it makes blocking calls to the daemon)."""
    return await anyio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args, input=stdin))


async def test_cli_drives_the_running_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config()
    config.access.headless_timeout_s = 0
    with anyio.fail_after(30):
        async with open_rig(tmp_path, "socket", config) as rig:
            assert rig.socket is not None
            monkeypatch.setenv("AIOS_SOCKET", str(rig.socket))
            pid, alpha = await rig.agent("alpha")

            ran = await invoke(["run", "chat", "hello", "daemon"])  # runs in the daemon, streams here
            assert (ran.exit_code, ran.stdout) == (0, "echo: hello daemon\n"), ran.output
            chat = next(p for p in rig.kernel.ps() if p["agent"] == "chat")
            assert chat["state"] == "exited" and chat["result"] == "echo: hello daemon"

            ps = await invoke(["ps", "--json"])
            assert ps.exit_code == 0, ps.output
            assert [(p["pid"], p["agent"]) for p in json.loads(ps.stdout)["processes"]] == [(pid, "alpha")]

            assert (await invoke(["suspend", str(pid)])).exit_code == 0
            assert rig.kernel.info(pid)["state"] == "suspended"
            assert (await invoke(["resume", str(pid)])).exit_code == 0
            assert (await invoke(["nice", str(pid), "background"])).exit_code == 0
            assert rig.kernel.info(pid)["priority"] == "background"
            missing = await invoke(["kill", "999"])
            assert missing.exit_code == 2 and "no process with pid 999" in missing.output

            # An approval answered "always" from the terminal prompt, then listed and revoked.
            outcome: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                watch_done = anyio.Event()

                async def watch() -> None:
                    outcome["watch"] = await invoke(["approvals", "watch", "-n", "1"], stdin="a\n")
                    watch_done.set()

                tg.start_soon(watch)
                while not rig.kernel.events.has_approver():
                    await anyio.sleep(0.01)
                outcome["call"] = await alpha.call("proc.test_touch", kind="tool", target="t.ask_cli")
                await watch_done.wait()
            assert outcome["call"] == {"touched": "tool:t.ask_cli"}
            assert "approval needed" in outcome["watch"].output
            rules = json.loads((await invoke(["policy", "list", "--json"])).stdout)["rules"]
            assert [(r["agent"], r["resource"], r["decision"]) for r in rules] == [("alpha", "tool:t.ask_cli", "allow")]
            revoked = await invoke(["policy", "revoke", str(rules[0]["id"])])
            assert revoked.exit_code == 0 and "revoked" in revoked.output
            assert PolicyStore().rules() == []
            assert (await invoke(["policy", "revoke", "42"])).exit_code == 2

            with pytest.raises(Exception, match="headless"):
                await alpha.call("proc.test_touch", kind="tool", target="t.ask_cli")
            audit = json.loads((await invoke(["audit", "--denied", "--json"])).stdout)["rows"]
            assert audit[-1]["resource"] == "tool:t.ask_cli" and audit[-1]["agent"] == "alpha"
            listing = await invoke(["audit", "--agent", "alpha"])
            assert listing.exit_code == 0 and "alpha" in listing.stdout

            assert (await invoke(["kill", str(pid)])).exit_code == 0
            assert (await rig.run(rig.kernel.wait, pid))["exit_code"] == 143
            assert json.loads((await invoke(["approvals", "--json"])).stdout) == {"approvals": []}


async def test_without_a_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_SOCKET", str(tmp_path / "none.sock"))
    for args in (["kill", "1"], ["suspend", "1"], ["approvals"], ["approve", "x", "deny"]):
        result = await invoke(args)
        assert result.exit_code == 1, args
        assert "no kernel is running" in result.output
    assert json.loads((await invoke(["policy", "list", "--json"])).stdout) == {"rules": []}
    PolicyStore().remember("chat", "tool:git.push", "deny")
    assert "git.push" in (await invoke(["policy", "list"])).stdout
    assert (await invoke(["policy", "revoke", "1"])).exit_code == 0
    assert json.loads((await invoke(["audit", "--json"])).stdout) == {"rows": []}


async def test_prompt_maps_keys_to_answers(tmp_path: Path) -> None:
    config = Config()
    config.access.approval_timeout_s = 10
    with anyio.fail_after(20):
        async with open_rig(tmp_path, config=config) as rig:
            _, alpha = await rig.agent("alpha")
            asked: list[Any] = []

            def ask(event: Any) -> str:
                asked.append(event)
                return "deny_always"

            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: prompt_approvals(rig.kernel, ask=ask, count=1))
                while not rig.kernel.events.has_approver():
                    await anyio.sleep(0.01)
                with pytest.raises(Exception, match="always deny"):
                    await alpha.call("proc.test_touch", kind="tool", target="t.ask3")
            assert [e.resource for e in asked] == ["tool:t.ask3"]
