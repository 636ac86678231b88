"""fs.* syscalls through Kernel.dispatch (access control, audit) on the FakeBackend; LLM plans with a double."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios.api import Agent, Capabilities, Context, Manifest
from aios.config import Config
from aios.errors import PermissionDenied, UsageError
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.context import ProcessContext
from memory.semfs.llm_ops import Plan, compare, plan, run_plan, summarize
from memory.store import Store
from tests.unit._semfs_kit import open_fs, write_corpus

pytestmark = pytest.mark.anyio


class _Holder(Agent):
    manifest = Manifest(name="holder", interactive=True)

    async def run(self, ctx: Context, goal: str) -> str | None:
        while await ctx.input() is not None:
            pass
        return None


def _agent(name: str, caps: Capabilities) -> type[Agent]:
    return type(name, (_Holder,), {"manifest": Manifest(name=name, capabilities=caps, interactive=True)})


class _Agents:
    def __init__(self, root: Path) -> None:
        self.classes = [
            _agent("reader", Capabilities(files_read=(str(root),))),
            _agent("writer", Capabilities(files_read=(str(root),), files_write=(str(root / "notes"),))),
            _agent("nobody", Capabilities()),
            _agent("owner", Capabilities(files_write=(str(root),))),
        ]

    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return self.classes


async def _as(kernel: Any, name: str) -> ProcessContext:
    pid = await kernel.spawn(name)
    return ProcessContext(kernel, kernel._procs[pid])


async def test_fs_syscalls_under_access_control(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    plugins = PluginManager(load_entry_points=False, plugins_dir=tmp_path / "no-plugins")
    plugins.register(_Agents(root), name="semfs-test-agents")
    store = Store.open(tmp_path / "home" / "aios.db")
    with anyio.fail_after(60):
        async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
            reader, writer, nobody, owner = [await _as(kernel, n) for n in ("reader", "writer", "nobody", "owner")]
            with pytest.raises(PermissionDenied):  # mounting changes shared state: a read grant is not enough
                await reader.call("fs.mount", path=str(root))
            assert kernel.services["semfs"].db.mounts() == []
            mounted = await owner.call("fs.mount", path=str(root))
            assert mounted["stats"]["indexed"] == 4
            found = await reader.call("fs.search", query="aphids", mode="keyword")
            assert [r["relpath"] for r in found["results"]] == ["garden.md"]
            assert {"path", "score", "chunk"} <= set(found["results"][0])
            with pytest.raises(PermissionDenied):
                await nobody.call("fs.search", query="aphids")
            # A second mount the reader may not read: its search covers only the first, instead of failing.
            other = write_corpus(tmp_path / "private", {"diary.md": "aphids ate my secret roses"})
            await anyio.to_thread.run_sync(lambda: kernel.services["semfs"].index(other))
            seen = await reader.call("fs.search", query="aphids", mode="keyword")
            assert [r["relpath"] for r in seen["results"]] == ["garden.md"]
            with pytest.raises(PermissionDenied):
                await reader.call("fs.search", query="aphids", mount="private")
            with pytest.raises(PermissionDenied):
                await nobody.call("fs.cat", path=str(root / "garden.md"))
            with pytest.raises(PermissionDenied):  # read-only grant: no writes
                await reader.call("fs.write", path=str(root / "garden.md"), text="overwritten")
            assert "Aphids" in (root / "garden.md").read_text()
            with pytest.raises(PermissionDenied):  # write grant is only notes/
                await writer.call("fs.rollback", path=str(root / "garden.md"), steps=1)
            target = root / "notes" / "travel.txt"
            await writer.call("fs.write", path=str(target), text="Renew the passport in May.\n")
            history = await writer.call("fs.history", path=str(target))
            assert [v["source"] for v in history["versions"]] == ["index", f"pid:{writer.pid}"]
            assert "-Passport renewal" in (await writer.call("fs.diff", path=str(target)))["diff"]
            assert (await writer.call("fs.rollback", path=str(target), steps=1))["changed"]
            assert target.read_text().startswith("Passport renewal takes six weeks")
            with pytest.raises(UsageError, match="invalid request"):
                await reader.call("fs.search", query="")
            with pytest.raises(UsageError, match="cannot go back"):
                await writer.call("fs.rollback", path=str(target), steps=50)
            assert (await writer.fs.search("passport", mode="keyword"))[0]["relpath"] == "notes/travel.txt"
            assert (await writer.fs.read(str(target))).startswith("Passport renewal")
            assert len(await writer.fs.history(str(target))) == 3
            files = await reader.call("fs.ls", target="docs")
            assert len(files["files"]) == 4
            with pytest.raises(PermissionDenied):  # check covers every mount, the private one too
                await reader.call("fs.check")
            from memory.semfs.check import check

            assert (await anyio.to_thread.run_sync(check, kernel.services["semfs"]))["ok"]
            denied = store.audit_rows(denied_only=True)
            assert {r["syscall"] for r in denied} >= {"fs.search", "fs.cat", "fs.write", "fs.rollback"}
            assert kernel.services["semfs"].watcher is not None  # the service watches the mounts


async def test_llm_backed_syscalls_go_through_the_engine(tmp_path: Path) -> None:
    """summarize / join --merge / compare reach the shared engine (here the scripted fake) and are cached."""
    root = write_corpus(tmp_path / "docs")
    plugins = PluginManager(load_entry_points=False, plugins_dir=tmp_path / "no-plugins")
    plugins.register(_Agents(root), name="semfs-test-agents")
    store = Store.open(tmp_path / "home" / "aios.db")
    with anyio.fail_after(60):
        async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
            writer, owner = await _as(kernel, "writer"), await _as(kernel, "owner")
            with pytest.raises(PermissionDenied):  # indexing may mount: write access to the folder needed
                await writer.call("fs.index", path=str(root))
            await owner.call("fs.index", path=str(root))
            garden = str(root / "garden.md")
            first = await writer.call("fs.summarize", target=garden)
            assert first["summary"].startswith("echo:") and not first["cached"]
            # The model is called as the calling process: accounted to it and audited as its llm.chat.
            info = kernel.info(writer.pid)
            assert info["llm_calls"] == 1 and info["prompt_tokens"] > 0
            llm_rows = [
                r for r in kernel.audit_rows(limit=1000) if r["pid"] == writer.pid and r["syscall"] == "llm.chat"
            ]
            assert llm_rows and llm_rows[0]["decision"] == "allow"
            assert (await writer.call("fs.summarize", target=garden))["cached"]
            sources = [str(root / "notes" / "travel.txt"), garden]
            with pytest.raises(PermissionDenied):  # the new file must be inside a write grant
                await writer.call("fs.join", sources=sources, into=str(root / "joined.md"))
            into = root / "notes" / "joined.md"
            plain = await writer.call("fs.join", sources=sources, into=str(into))
            assert plain["outcome"] == "indexed" and into.read_text().startswith("## docs/notes/travel.txt")
            merged = await writer.call("fs.join", sources=sources, into=str(into), merge=True)
            assert merged["outcome"] == "indexed" and into.read_text().startswith("echo:")
            compared = await writer.call("fs.compare", path=str(into))
            assert compared["comparison"].startswith("echo:") and "+echo:" in compared["diff"]
            with pytest.raises(PermissionDenied):  # a view is shared state: write access to the mount needed
                await writer.call("fs.group", name="trip", query="passport", mode="keyword")
            view = await owner.call("fs.group", name="trip", query="passport", mode="keyword")
            assert view["files"] >= 1
            listed = (await writer.call("fs.ls", target="@trip"))["files"]
            assert listed[0]["relpath"] == "notes/travel.txt"


class ScriptedLLM:
    """A test double for the LLM seam: returns canned replies and records the prompts."""

    model = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None, max_tokens: int = 256
    ) -> str:
        self.calls.append({"messages": messages, "schema": schema})
        return self.replies.pop(0)


def test_plan_narrowing_helpers() -> None:
    from memory.semfs.llm_ops import _fix_query, _mentioned_paths, _ops_for

    assert _mentioned_paths("undo ~/notes/todo.md and /srv/a/b.txt.") == [
        str(Path("~/notes/todo.md").expanduser()),
        "/srv/a/b.txt",
    ]
    assert _ops_for("show the history of x.md") == ["cat", "history"]
    assert _ops_for("undo the last change") == ["rollback"]
    assert len(_ops_for("hmm")) == 12  # no operation named: every one is offered
    assert _fix_query("taxes", "find my notes about aphids") == "aphids"  # copied example words are dropped
    assert _fix_query("aphids", "find my notes about aphids") == "aphids"


async def test_plan_confirmation_and_cached_summaries(aios_home: Path, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs = open_fs(aios_home)
    try:
        fs.index(root)
        fs.write(root / "garden.md", b"# Garden\n\nOnly herbs this year.\n")
        steps = [
            {"op": "search", "path": "", "query": "sourdough", "dest": "", "steps": 1},
            {"op": "rollback", "path": str(root / "garden.md"), "query": "", "dest": "", "steps": 1},
        ]
        llm = ScriptedLLM(json.dumps({"steps": steps}), "not json at all")
        with anyio.fail_after(30):
            the_plan = await plan(fs, llm, f"find the sourdough recipe and undo the edit to {root / 'garden.md'}")
            assert the_plan.destructive
            narrowed = llm.calls[0]["schema"]["properties"]["steps"]["items"]["properties"]
            assert narrowed["path"]["enum"] == ["", str(root / "garden.md")]  # only paths the request names
            assert set(narrowed["op"]["enum"]) == {"search", "rollback"}  # only operations it names
            refused = await run_plan(fs, llm, the_plan, confirm=None)
            assert [r["status"] for r in refused] == ["ok", "skipped"]
            assert refused[0]["detail"][0]["path"].endswith("recipes/bread.md")
            assert "herbs" in (root / "garden.md").read_text()

            async def yes(step: Any) -> bool:
                return True

            done = await run_plan(fs, llm, the_plan, confirm=yes)
            assert done[1]["status"] == "ok" and "Aphids" in (root / "garden.md").read_text()
            with pytest.raises(UsageError, match="usable plan"):
                await plan(fs, llm, "gibberish")
            bad = Plan.model_validate({"steps": [{"op": "cat", "path": str(root / "missing.md")}]})
            assert (await run_plan(fs, llm, bad))[0]["status"] == "error"
            summarizer = ScriptedLLM("A note about growing tomatoes.")
            first = await summarize(fs, summarizer, str(root / "garden.md"))
            again = await summarize(fs, summarizer, str(root / "garden.md"))
            assert (first["cached"], again["cached"]) == (False, True) and len(summarizer.calls) == 1
            comparer = ScriptedLLM("The herbs note replaced the tomato note.")
            result = await compare(fs, comparer, str(root / "garden.md"), 2, 3)
            assert result["comparison"].startswith("The herbs") and "+Tomatoes" in result["diff"]
    finally:
        fs.close()
