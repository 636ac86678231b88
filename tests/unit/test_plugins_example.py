"""The example third-party distribution (plugins/example_plugin), installed the way pip lays it out (its package
plus a dist-info with the entry points from its own pyproject.toml) and exercised end to end: discovered,
listed, run on the fake backend through a real kernel in its own confined process, its @tool in the catalog and
access-checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from aios import Agent, Context, Manifest
from aios.config import Config
from aios.errors import PermissionDenied
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager

EXAMPLE = Path(__file__).resolve().parents[2] / "plugins" / "example_plugin"


def _install(site: Path) -> None:
    """What `pip install plugins/example_plugin` leaves in site-packages, without a network or build backend."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    for package in (EXAMPLE / "src").iterdir():
        if package.is_dir() and not package.name.startswith("."):
            shutil.copytree(package, site / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items())
    )


@pytest.fixture
def installed(aios_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site-packages"
    site.mkdir()
    _install(site)
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("aios_example", None)


def test_discovered_with_its_agent_and_tool(installed: Path) -> None:
    manager = PluginManager()
    assert manager.failures == []
    assert manager.agent("wordcount").manifest.capabilities.tools == ("example.count_words",)
    assert [t.name for t in manager.tools()["example"]] == ["count_words"]
    where = manager.sources["example"]
    assert (where.kind, where.distribution, where.version) == ("entry point", "aios-example", "0.1.0")
    from aios.cli import cli

    listed = CliRunner().invoke(cli, ["plugins", "info", "example", "--json"])
    assert listed.exit_code == 0, listed.output
    row = json.loads(listed.output)
    assert row["tools"] == ["example.count_words"] and row["agents"][0]["name"] == "wordcount"


_SEEN: dict[str, Any] = {}


class Outsider(Agent):
    """An agent granted no tools: the example's tool is in the catalog, but not for it."""

    manifest = Manifest(name="outsider")

    async def run(self, ctx: Context, goal: str) -> str | None:
        _SEEN["visible"] = [t["name"] for t in await ctx.tools.list()]
        try:
            await ctx.tools.call("example.count_words", {"text": "a b"})
        except PermissionDenied as exc:
            _SEEN["denied"] = exc.one_line()
        return None


class Outsiders:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Outsider]


def test_runs_on_the_fake_backend_with_its_tool_checked_by_the_kernel(installed: Path, tmp_path: Path) -> None:
    from kernel import open_kernel
    from kernel.backends.fake import FakeBackend
    from memory.store import Store

    manager = PluginManager()
    manager.register(Outsiders(), name="outsiders")
    manager.approve("aios-example")  # the user approved what it declares (first run asks: test_plugins_approval.py)
    store = Store.open(tmp_path / "aios.db")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        runtime = FakeBackend(script=lambda messages: "A short text.")
        with anyio.fail_after(30):
            async with open_kernel(Config(), runtime=runtime, store=store, plugins=manager) as kernel:
                counted = await kernel.wait(await kernel.spawn("wordcount", "one two three four"))
                outsider = await kernel.wait(await kernel.spawn("outsider", ""))
        return counted, outsider, store.messages(counted["pid"])

    try:
        counted, outsider, messages = anyio.run(scenario)
    finally:
        store.close()
    assert counted["state"] == "exited", counted.get("error")
    assert counted["result"] == "4"
    # an installed third-party agent runs in its own confined process (where Landlock is available)
    assert counted["os_pid"] and counted["os_pid"] != os.getpid()
    assert counted["confinement"] != "in-process"
    assert counted["tool_calls"] == 1
    assert messages[-1]["content"] == "4 words. A short text.\n"
    assert outsider["state"] == "exited", outsider.get("error")
    assert "example.count_words" not in _SEEN["visible"]
    assert "example.count_words" in _SEEN["denied"]


def test_the_example_distributions_own_tests_pass(aios_home: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=EXAMPLE,
        env={**os.environ, "AIOS_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
