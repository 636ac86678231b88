"""Private data files: a real in-process kernel (fake LLM backend) creates its stores in a fresh data dir under
the common user umask 022, does real work (a semfs mount and index, a memory write with its vectors, an audit
row, a swap file, a policy rule, an MCP server's log), and nothing in the data dir is open to group or others.
`aios doctor` reports a loosened file with the command that fixes it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from click.testing import CliRunner

from aios import Agent, Capabilities, Context, Manifest
from aios.cli import cli
from aios.config import Config
from aios.errors import PermissionDenied
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.context import ProcessContext

SLOW_SERVER = Path(__file__).resolve().parents[1] / "mcp_servers" / "slow_server.py"


@pytest.fixture
def user_umask() -> Iterator[None]:
    """The umask most users have: files 0644, dirs 0755 unless the program says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class _Holder(Agent):
    manifest = Manifest(name="holder", interactive=True)

    async def run(self, ctx: Context, goal: str) -> str | None:
        while await ctx.input() is not None:
            pass
        return None


class _Agents:
    def __init__(self, root: Path) -> None:
        def agent(name: str, caps: Capabilities) -> type[Agent]:
            return type(name, (_Holder,), {"manifest": Manifest(name=name, capabilities=caps, interactive=True)})

        self.classes = [
            agent("owner", Capabilities(files_write=(str(root),), memory_read=("notes",), memory_write=("notes",))),
            agent("nobody", Capabilities()),
        ]

    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return self.classes


def _open_to_others(root: Path) -> list[str]:
    """Every path under ``root`` (itself included) whose mode gives group or others any access."""
    found = []
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.S_IMODE(st.st_mode):o}")
    return found


async def _wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await anyio.sleep(0.1)


def _doctor(runner: CliRunner) -> dict[str, dict[str, object]]:
    result = runner.invoke(cli, ["doctor", "--json"])
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


@pytest.mark.anyio
async def test_a_fresh_data_dir_holds_nothing_others_can_reach(
    aios_home: Path, tmp_path: Path, user_umask: None
) -> None:
    runner = CliRunner()
    # Configured the way a user does it, through the CLI: an MCP server that starts at boot and logs to logs/.
    added = runner.invoke(cli, ["mcp", "add", "slow", "--autostart", "--", sys.executable, str(SLOW_SERVER)])
    assert added.exit_code == 0, added.output
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')  # the user's own text file, 0644
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "garden.md").write_text("# Garden\n\nTomatoes need full sun and regular watering.\n")
    (docs / "travel.txt").write_text("Passport renewal takes six weeks.\n")
    plugins = PluginManager(load_entry_points=False, plugins_dir=tmp_path / "no-plugins")
    plugins.register(_Agents(docs), name="modes-test-agents")
    with anyio.fail_after(120):
        async with open_kernel(Config(), runtime=FakeBackend(), plugins=plugins) as kernel:
            owner = ProcessContext(kernel, kernel._procs[await kernel.spawn("owner")])
            nobody = ProcessContext(kernel, kernel._procs[await kernel.spawn("nobody")])
            assert (await owner.call("fs.mount", path=str(docs)))["stats"]["indexed"] == 2
            await owner.call("mem.archive", namespace="notes", text="The cabin code is 4711.", tags=["trip"])
            with pytest.raises(PermissionDenied):
                await nobody.call("fs.cat", path=str(docs / "garden.md"))
            await _wait_for(lambda: kernel.store.audit_rows(denied_only=True), "the audit row (written in batches)")
            kernel.guard.policy.remember("owner", f"fs:{docs}", "allow", syscall="fs.cat")
            # A context swapped to a file, as the engine does under memory pressure.
            handle = await anyio.to_thread.run_sync(
                lambda: kernel.engine.swap.put(np.zeros(4096, dtype=np.uint8), force_file=True)
            )
            assert handle.path is not None and handle.path.exists()
            await _wait_for(lambda: (aios_home / "logs" / "mcp" / "slow.stderr.log").exists(), "the MCP log")
            await _wait_for(lambda: (aios_home / "chroma" / "chroma.sqlite3").exists(), "chroma's store")
            await _wait_for(
                lambda: kernel.services["semfs"].db.q("SELECT count(*) AS n FROM semfs_chunks WHERE embedded = 1")[0][
                    "n"
                ],
                "vectors of the indexed files",
            )
            names = {p.name for p in aios_home.rglob("*")}
            assert {"aios.db", "aios.db-wal", "aios.db-shm", "semfs.lock", "policy.json", "mcp.json"} <= names
            assert handle.path.name in names and "chroma.sqlite3" in names and "slow.stderr.log" in names
            # While it runs (WAL and SHM in use) and after it closes: only config.toml, which the user wrote.
            assert _open_to_others(aios_home) == ["aios-home/config.toml 644"]
    assert _open_to_others(aios_home) == ["aios-home/config.toml 644"]
    assert stat.S_IMODE(aios_home.stat().st_mode) == 0o700  # so config.toml is not reachable either
    assert os.umask(0o022) == 0o022  # the kernel put the process umask back
    assert _doctor(runner)["modes"]["ok"]


def test_doctor_fails_on_a_loosened_file_and_passes_after_the_fix(aios_home: Path) -> None:
    runner = CliRunner()
    aios_home.mkdir(mode=0o700)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    (aios_home / "config.toml").chmod(0o600)
    assert runner.invoke(cli, ["run", "chat", "hi"]).exit_code == 0  # creates the store under the CLI's umask
    assert (aios_home / "aios.db").exists() and not _open_to_others(aios_home)
    assert _doctor(runner)["modes"]["ok"]
    (aios_home / "aios.db").chmod(0o644)
    (aios_home / "swap").mkdir(mode=0o755)
    (aios_home / "swap").chmod(0o755)
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if "modes" in x)
    assert line.startswith("FAIL modes:")
    assert str(aios_home / "aios.db") in line and str(aios_home / "swap") in line
    fix = f"chmod -R go-rwx {aios_home}"
    assert fix in line
    subprocess.run(fix.split(), check=True)
    assert _doctor(runner)["modes"]["ok"]
    assert runner.invoke(cli, ["doctor"]).stdout.count("FAIL") == 0


@pytest.mark.anyio
async def test_a_folder_the_user_named_is_reported_not_changed(aios_home: Path, user_umask: None) -> None:
    aios_home.mkdir(mode=0o755)
    aios_home.chmod(0o755)
    async with open_kernel(Config(llm={"backend": "fake"}), runtime=FakeBackend()):
        pass
    assert stat.S_IMODE(aios_home.stat().st_mode) == 0o755  # AIOS_HOME is the user's folder: left as it is
    assert stat.S_IMODE((aios_home / "aios.db").stat().st_mode) == 0o600  # what aios made inside is private
    modes = _doctor(CliRunner())["modes"]
    assert not modes["ok"] and str(aios_home) in str(modes["detail"])


@pytest.mark.anyio
async def test_the_default_dirs_are_aios_own_and_tightened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_umask: None
) -> None:
    import platformdirs

    monkeypatch.delenv("AIOS_HOME")
    data, config, run = tmp_path / "share" / "aios", tmp_path / "config" / "aios", tmp_path / "run" / "aios"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app: str(data))
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda app: str(config))
    monkeypatch.setattr(platformdirs, "user_runtime_dir", lambda app: str(run))
    for folder in (data, config):
        folder.mkdir(parents=True, mode=0o755)  # as an older aios left them
    async with open_kernel(Config(llm={"backend": "fake"}), runtime=FakeBackend()):
        pass
    assert stat.S_IMODE(data.stat().st_mode) == 0o700 and stat.S_IMODE(config.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "share").stat().st_mode) == 0o755  # never a folder that is not aios's
    assert not _open_to_others(data)
