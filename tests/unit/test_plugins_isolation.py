"""Misbehaving plugins, found the way a user's plugins are (one-file plugins in the config dir): one that fails
to import, agents that raise, loop, overspend or reach outside their capabilities. Each fails alone with a
message naming it; the kernel boots and the well-behaved agent beside them finishes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.config import Config
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store

pytestmark = pytest.mark.anyio

UNRULY = """
import anyio
from aios import Agent, Capabilities, Manifest, hookimpl

class Raiser(Agent):
    manifest = Manifest(name="raiser")

    async def run(self, ctx, goal):
        raise RuntimeError("raiser broke on purpose")

class Looper(Agent):
    manifest = Manifest(name="looper")

    async def run(self, ctx, goal):
        while True:
            await anyio.sleep(0.01)

class Spender(Agent):
    manifest = Manifest(name="spender", capabilities=Capabilities(llm_token_budget=8))

    async def run(self, ctx, goal):
        for _ in range(50):
            await ctx.llm.complete("talk about everything at great length " * 3)
        return "never"

class Trespasser(Agent):
    manifest = Manifest(name="trespasser", capabilities=Capabilities(files_read=("/nonexistent-grant",)))

    async def run(self, ctx, goal):
        return await ctx.fs.read("/etc/passwd")

class Polite(Agent):
    manifest = Manifest(name="polite")

    async def run(self, ctx, goal):
        return "still here: " + await ctx.llm.complete(goal)

@hookimpl
def register_agents():
    return [Raiser, Looper, Spender, Trespasser, Polite]
"""


async def test_each_misbehaving_agent_fails_alone(aios_home: Path, tmp_path: Path) -> None:
    folder = aios_home / "plugins"
    folder.mkdir(parents=True)
    (folder / "unruly.py").write_text(UNRULY)
    (folder / "broken.py").write_text("import not_a_module_anywhere\n")
    plugins = PluginManager(load_entry_points=False)
    assert [f.source.rsplit("/", 1)[-1] for f in plugins.failures] == ["broken.py"]
    plugins.approve("unruly")  # the user approved what it declares (first run asks: test_plugins_approval.py)
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(30):
            async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
                pids = {
                    name: await kernel.spawn(name, "hello") for name in ("raiser", "looper", "spender", "trespasser")
                }
                ended = {name: await kernel.wait(pids[name]) for name in ("raiser", "spender", "trespasser")}
                assert kernel.info(pids["looper"])["state"] not in ("exited", "failed")  # loops on, alone
                await kernel.kill(pids["looper"])
                ended["looper"] = await kernel.wait(pids["looper"])
                polite = await kernel.wait(await kernel.spawn("polite", "hello"))
    finally:
        store.close()
    assert (ended["raiser"]["state"], ended["raiser"]["agent"]) == ("failed", "raiser")
    assert ended["raiser"]["error"] == "RuntimeError: raiser broke on purpose"
    assert ended["spender"]["state"] == "failed" and ended["spender"]["error"].startswith("BudgetExceeded")
    assert ended["trespasser"]["state"] == "failed" and "PermissionDenied" in ended["trespasser"]["error"]
    assert "trespasser" in ended["trespasser"]["error"]
    assert (ended["looper"]["state"], ended["looper"]["error"]) == ("exited", "killed")
    assert polite["state"] == "exited" and polite["result"].startswith("still here: ")
