"""`aios run AGENT GOAL --allow PATH` / `--allow-read PATH`: the user grants one run a folder (read and write, or
read only) on top of what the agent's manifest asks for, never beyond what `[access.user]` lets the user do;
audited. A file outside the granted folder is still refused, and without the flag the same read is refused.

The kernel tests use the real kernel (FakeBackend) and the confined open the fs syscalls use; the CLI test runs
the real `aios run` in a subprocess on a one-file plugin agent that reads through `ctx.fs`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import open_rig
from click.testing import CliRunner

from aios import paths
from aios.config import Config
from aios.errors import PermissionDenied, UsageError
from kernel.context import ProcessContext

pytestmark = pytest.mark.anyio


async def _as(rig: Any, name: str, **grants: tuple[str, ...]) -> ProcessContext:
    pid = await rig.kernel.spawn(name, "", **grants)
    return ProcessContext(rig.kernel, rig.kernel._procs[pid])


async def test_allow_grants_exactly_that_folder_for_that_run(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with open_rig(tmp_path) as rig:
            shared = rig.root / "shared"
            (shared / "sub").mkdir(parents=True)
            (shared / "sub" / "a.txt").write_text("inside")
            secret = rig.root / "secret.txt"
            without = await _as(rig, "beta")
            with pytest.raises(PermissionDenied):  # the control: no grant, no read
                await without.call("proc.test_read", path=str(shared / "sub" / "a.txt"))
            beta = await _as(rig, "beta", allow_write=(str(shared),))
            assert await beta.call("proc.test_read", path=str(shared / "sub" / "a.txt")) == "inside"
            await beta.call("proc.test_touch", kind="file", target=str(shared / "new.txt"), write=True)
            with pytest.raises(PermissionDenied):  # outside the folder: still refused
                await beta.call("proc.test_read", path=str(secret))
            with pytest.raises(PermissionDenied):
                await beta.call("proc.test_read", path=str(shared) + "-sibling/x")
            reader = await _as(rig, "beta", allow_read=(str(shared),))
            assert await reader.call("proc.test_read", path=str(shared / "sub" / "a.txt")) == "inside"
            with pytest.raises(PermissionDenied):  # read-only grant: no writes
                await reader.call("proc.test_touch", kind="file", target=str(shared / "new.txt"), write=True)
            later = await _as(rig, "beta")  # the grant was for those runs only
            with pytest.raises(PermissionDenied):
                await later.call("proc.test_read", path=str(shared / "sub" / "a.txt"))
            rows = await anyio.to_thread.run_sync(lambda: rig.kernel.audit_rows(agent="user"))
            granted = {(r["pid"], r["resource"]) for r in rows if r["syscall"] == "proc.grant"}
            assert granted == {
                (beta.pid, f"file:{shared.resolve()} (write)"),
                (reader.pid, f"file:{shared.resolve()}"),
            }


async def test_allow_is_attenuated_by_the_users_own_caps(tmp_path: Path) -> None:
    config = Config()
    root = tmp_path / "files"
    config.access.user.files_read = [str(root / "granted")]
    config.access.user.files_write = []
    with anyio.fail_after(30):
        async with open_rig(tmp_path, config=config) as rig:
            # the user may only read files/granted: granting all of files/ gives the agent just that, read only
            beta = await _as(rig, "beta", allow_read=(str(rig.root),))
            assert rig.kernel.process(beta.pid).caps.files_read == (str((rig.root / "granted").resolve()),)
            assert await beta.call("proc.test_read", path=str(rig.root / "granted" / "note.txt")) == "granted note"
            with pytest.raises(PermissionDenied):
                await beta.call("proc.test_read", path=str(rig.root / "secret.txt"))
            count = len(rig.kernel.ps())
            with pytest.raises(PermissionDenied, match=r"--allow .*outside the folders \[access.user\] lets you write"):
                await rig.kernel.spawn("beta", "", allow_write=(str(rig.root / "granted"),))
            with pytest.raises(UsageError, match="not a folder"):
                await rig.kernel.spawn("beta", "", allow_read=(str(rig.root / "granted" / "note.txt"),))
            with pytest.raises(UsageError, match="absolute path"):
                await rig.kernel.spawn("beta", "", allow_read=("granted",))
            assert len(rig.kernel.ps()) == count  # a refused grant starts nothing


PEEK = """
from aios import Agent, Context, Manifest, hookimpl


class Peek(Agent):
    manifest = Manifest(name="peek", description="reads the file its goal names")

    async def run(self, ctx: Context, goal: str) -> str | None:
        try:
            text = await ctx.fs.read(goal)
        except Exception as exc:
            text = "REFUSED " + str(exc)
        await ctx.write(text)
        return None


@hookimpl
def register_agents():
    return [Peek]
"""


def test_aios_run_allow_on_the_command_line(aios_home: Path, tmp_path: Path) -> None:
    from aios.cli import cli

    paths.plugins_dir().mkdir(parents=True, exist_ok=True)
    (paths.plugins_dir() / "peek.py").write_text(PEEK)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    assert CliRunner().invoke(cli, ["plugins", "approve", "peek"]).exit_code == 0
    files = tmp_path / "files"
    data = files / "data"
    data.mkdir(parents=True)
    (data / "sales.csv").write_text("region,total\nnorth,42\n")
    (files / "private.txt").write_text("PRIVATE")
    mounted = CliRunner().invoke(cli, ["fs", "mount", str(files)])  # fs.cat reads mounted files
    assert mounted.exit_code == 0, mounted.output
    env = {**os.environ, "AIOS_HOME": str(aios_home), "AIOS_SOCKET": str(tmp_path / "none.sock")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aios", "run", "peek", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    allowed = run(str(data / "sales.csv"), "--allow", "files/data")  # relative to the shell's folder
    assert allowed.returncode == 0, allowed.stderr
    assert "north,42" in allowed.stdout
    outside = run(str(files / "private.txt"), "--allow", str(data))
    assert "REFUSED" in outside.stdout and "PRIVATE" not in outside.stdout
    plain = run(str(data / "sales.csv"))
    assert "REFUSED" in plain.stdout and "north,42" not in plain.stdout
    missing = run("x", "--allow", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


async def test_allow_through_the_socket_as_aios_run_sends_it_to_a_daemon(tmp_path: Path) -> None:
    with anyio.fail_after(30):
        async with open_rig(tmp_path, transport="socket") as rig:
            front = await rig.frontend()
            shared = rig.root / "granted" / "rw"
            pid = await front.spawn("beta", "", allow_write=(str(shared),))
            caps = rig.kernel.process(pid).caps
            assert caps.files_write == (str(shared.resolve()),) and caps.files_read == ()
            with pytest.raises(UsageError, match="not a folder"):
                await front.spawn("beta", "", allow_read=(str(rig.root / "no-such-folder"),))
