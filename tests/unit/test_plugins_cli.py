"""`aios plugins list|info` and `aios agent new`: broken plugins are reported by name and skipped; a scaffolded
agent package's own test passes as generated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aios.cli import cli
from aios.plugin_manager import PluginManager

GOOD = """
from aios import Agent, Capabilities, Manifest, hookimpl, tool

class Greeter(Agent):
    manifest = Manifest(name="greeter", description="says hi", capabilities=Capabilities(files_read=("~/notes",)))

    async def run(self, ctx, goal):
        return "hi"

@tool(read_only=True)
def shout(text: str) -> str:
    "Upper-case a text."
    return text.upper()

@hookimpl
def register_agents():
    return [Greeter]

@hookimpl
def register_tools():
    return [shout]
"""

BAD_MANIFEST = """
from aios import Agent, Manifest, hookimpl

class NoName(Agent):
    manifest = Manifest(name="Not A Name")

    async def run(self, ctx, goal):
        return None

class SyncRun(Agent):
    manifest = Manifest(name="syncrun")

    def run(self, ctx, goal):
        return None

@hookimpl
def register_agents():
    return [NoName, SyncRun]
"""


@pytest.fixture
def plugin_dir(aios_home: Path) -> Path:
    folder = aios_home / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "greeter.py").write_text(GOOD)
    (folder / "badmanifest.py").write_text(BAD_MANIFEST)
    (folder / "noimport.py").write_text("import does_not_exist_anywhere\n")
    return folder


def test_broken_plugins_are_reported_by_name_and_the_rest_load(plugin_dir: Path) -> None:
    manager = PluginManager(load_entry_points=False)
    agents = manager.agents()
    assert "greeter" in agents and "chat" in agents
    assert "syncrun" not in agents
    problems = {(f.source.rsplit("/", 1)[-1], f.error) for f in manager.failures}
    assert any(src.startswith("noimport.py") and "does_not_exist_anywhere" in e for src, e in problems)
    assert any("badmanifest.py (agent 'NoName')" in src and "must match" in e for src, e in problems)
    assert any("badmanifest.py (agent 'SyncRun')" in src and "async def run" in e for src, e in problems)


def test_plugins_list_and_info(plugin_dir: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["plugins", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {Path(r["name"]).name: r for r in json.loads(listed.output)["plugins"]}
    assert rows["greeter.py"]["kind"] == "file"
    assert rows["greeter.py"]["tools"] == ["greeter.shout"]
    assert rows["noimport.py"]["kind"] == "broken" and "does_not_exist_anywhere" in rows["noimport.py"]["errors"][0]
    assert rows["plugins.planner"]["kind"] == "builtin"
    info = runner.invoke(cli, ["plugins", "info", "greeter", "--json"])
    assert info.exit_code == 0, info.output
    (agent,) = json.loads(info.output)["agents"]
    assert agent["capabilities"] == {"files_read": ["~/notes"]}
    text = runner.invoke(cli, ["plugins", "info", "greeter"])
    assert "asks for: files_read=('~/notes',)" in text.output
    missing = runner.invoke(cli, ["plugins", "info", "nope"])
    assert missing.exit_code == 2 and "no plugin named 'nope'" in missing.output


def test_entry_points_load_one_by_one_and_aios_load_plugins_filters(
    aios_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    for dist, module, body in (("good_dist", "epgood", GOOD), ("bad_dist", "epbad", "raise ImportError('nope')\n")):
        (site / module).mkdir(parents=True)
        (site / module / "__init__.py").write_text(body)
        info = site / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[aios]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    manager = PluginManager()
    assert "greeter" in manager.agents()
    assert [f.source for f in manager.failures] == ["epbad"]
    assert manager.sources["epgood"].distribution == "good_dist" and manager.sources["epgood"].version == "1.0"
    monkeypatch.setenv("AIOS_LOAD_PLUGINS", "good_dist")
    only = PluginManager()
    assert "greeter" in only.agents() and only.failures == []
    monkeypatch.setenv("AIOS_LOAD_PLUGINS", "")
    assert "epgood" not in PluginManager().plugin_names()


def test_agent_new_scaffolds_a_package_whose_test_passes(aios_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["agent", "new", "notes-helper", "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    root = tmp_path / "aios-notes-helper"
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.aios]\nnotes-helper = "aios_notes_helper"' in pyproject
    again = runner.invoke(cli, ["agent", "new", "notes-helper", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(cli, ["agent", "new", "Bad Name", "--dir", str(tmp_path)])
    assert bad.exit_code == 2 and not (tmp_path / "aios-Bad Name").exists()
    env = {**os.environ, "AIOS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
