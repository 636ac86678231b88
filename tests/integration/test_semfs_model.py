"""Semantic FS commands on the real bundled model (marker: model): grammar-constrained plans, summaries,
and the files agent in a kernel."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.api import Capabilities, Manifest
from aios.config import Config, LLMConfig
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import load_runtime, open_kernel
from kernel.events import OutputWritten, TurnEnded
from kernel.sys_fs import KernelLLM
from memory.semfs.llm_ops import Plan, plan, summarize
from memory.store import Store
from plugins.files import FilesAgent
from tests.unit._semfs_kit import write_corpus

pytestmark = [pytest.mark.model, pytest.mark.anyio]


@pytest.fixture
def runtime():  # type: ignore[no-untyped-def]
    return load_runtime(Config(llm=LLMConfig(n_ctx=2048)))


def _files_agent(root: Path) -> type[FilesAgent]:
    caps = Capabilities(files_read=(str(root),), files_write=(str(root),), llm_token_budget=100_000)
    manifest = Manifest(name="files-test", capabilities=caps, interactive=True)
    return type("FilesTest", (FilesAgent,), {"manifest": manifest})


async def test_plan_is_valid_typed_json_and_summary_is_cached(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = write_corpus(tmp_path / "docs")
    store = Store.open(tmp_path / "home" / "aios.db")
    with anyio.fail_after(240):
        async with open_kernel(Config(llm=LLMConfig(temperature=0.0)), runtime=runtime, store=store) as kernel:
            fs = kernel.services["semfs"]
            await anyio.to_thread.run_sync(lambda: fs.index(root))
            llm = KernelLLM(kernel, kernel.user)  # the model as the user principal: checked and accounted
            for request in ("find my notes about the garden", f"undo the last change to {root / 'garden.md'}"):
                the_plan = await plan(fs, llm, request)
                assert isinstance(the_plan, Plan) and the_plan.steps  # grammar: always parses and validates
            first = await summarize(fs, llm, str(root / "garden.md"))
            second = await summarize(fs, llm, str(root / "garden.md"))
            assert first["summary"] and not first["cached"] and second == {**first, "cached": True}


async def test_files_agent_shows_plan_and_asks_before_destructive_steps(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = write_corpus(tmp_path / "docs")
    agent = _files_agent(root)

    class Extra:
        @hookimpl
        def register_agents(self) -> list[type]:
            return [agent]

    plugins = PluginManager(load_entry_points=False, plugins_dir=tmp_path / "none")
    plugins.register(Extra(), name="files-test")
    store = Store.open(tmp_path / "home" / "aios.db")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with anyio.fail_after(240):
        async with open_kernel(
            Config(llm=LLMConfig(temperature=0.0)), runtime=runtime, store=store, plugins=plugins
        ) as kernel:
            await anyio.to_thread.run_sync(lambda: kernel.services["semfs"].index(root))
            events = kernel.subscribe()
            pid = await kernel.spawn("files-test", f"delete {root / 'garden.md'}")
            text: list[str] = []
            asked = False
            async for event in events:
                if event.pid != pid:
                    continue
                if isinstance(event, OutputWritten):
                    text.append(event.text)
                elif isinstance(event, TurnEnded):
                    if "Run it? (yes/no)" in "".join(text) and not asked:
                        asked = True
                        await kernel.send(pid, "no")  # refuse: nothing may change
                        continue
                    break
            await kernel.close_input(pid)
            await kernel.wait(pid)
    transcript = "".join(text)
    assert "Plan:" in transcript  # the grammar-constrained plan is always shown first
    if asked:
        assert "Not confirmed" in transcript
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing changed without a yes
