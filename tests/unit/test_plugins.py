from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aios.errors import UnknownAgentError
from aios.plugin_manager import PluginManager
from plugins.chat import ChatAgent

ONE_FILE_PLUGIN = """
from aios import Agent, Manifest, hookimpl

class Greeter(Agent):
    manifest = Manifest(name="greeter", description="says hi")

    async def run(self, ctx, goal):
        await ctx.write("hi " + goal)
        return "done"

@hookimpl
def register_agents():
    return [Greeter]
"""


def test_builtin_chat_agent_registers_through_the_hook() -> None:
    manager = PluginManager(load_entry_points=False)
    assert manager.agent("chat") is ChatAgent
    assert "plugins.chat" in manager.plugin_names()
    assert manager.failures == []


def test_unknown_agent_names_the_available_ones() -> None:
    with pytest.raises(
        UnknownAgentError,
        match=r"unknown agent 'nope' \(available: chat, files, plan, planner, summarizer, supervisor, worker\)",
    ):
        PluginManager(load_entry_points=False).agent("nope")


def test_one_file_plugins_load_and_broken_ones_are_isolated(aios_home: Path) -> None:
    folder = aios_home / "plugins"
    folder.mkdir(parents=True)
    (folder / "greeter.py").write_text(ONE_FILE_PLUGIN)
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n")
    manager = PluginManager(load_entry_points=False)
    assert set(manager.agents()) == {
        "chat",
        "files",
        "greeter",
        "plan",
        "planner",
        "summarizer",
        "supervisor",
        "worker",
    }
    assert len(manager.failures) == 1
    assert "broken.py" in manager.failures[0].source
    assert "boom" in manager.failures[0].error


def test_duplicate_agent_names_keep_the_first(aios_home: Path) -> None:
    folder = aios_home / "plugins"
    folder.mkdir(parents=True)
    (folder / "dup.py").write_text(ONE_FILE_PLUGIN.replace('"greeter"', '"chat"'))
    manager = PluginManager(load_entry_points=False)
    assert manager.agent("chat") is ChatAgent
    assert any("already taken" in f.error for f in manager.failures)


def test_entry_point_plugins_are_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real installed distribution (a dist-info on sys.path) exposing the `aios` entry-point group."""
    site = tmp_path / "site"
    (site / "aios_greeter_dist").mkdir(parents=True)
    (site / "aios_greeter_dist" / "__init__.py").write_text(ONE_FILE_PLUGIN)
    dist = site / "aios_greeter_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aios-greeter-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[aios]\ngreeter = aios_greeter_dist\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        manager = PluginManager()
        assert "greeter" in manager.agents()
    finally:
        sys.modules.pop("aios_greeter_dist", None)
