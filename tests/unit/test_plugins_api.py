"""The public agent API (aios.api): every facade through the kernel's one syscall path on the fake backend,
and the same API over a bare runner context (what a worker process or a test double provides)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.api import as_context
from aios.config import Config
from aios.errors import AiosError, ModelError
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store

pytestmark = pytest.mark.anyio

_OUT: dict[str, Any] = {}


class Sdk(Agent):
    manifest = Manifest(name="sdk", capabilities=Capabilities(max_children=1, llm_token_budget=100_000))

    async def run(self, ctx: Context, goal: str) -> str | None:
        out = _OUT
        out["complete"] = await ctx.llm.complete("say hi", system="be brief")
        await ctx.memory.set_core("persona", "Be brief.")
        out["core"] = await ctx.memory.core()
        out["archived"] = await ctx.memory.archive("Passport renewal takes six weeks.", tags=["trip"])
        out["found"] = await ctx.memory.search("passport")
        out["got"] = await ctx.memory.get(out["archived"]["id"])
        out["forgot"] = await ctx.memory.forget(out["archived"]["id"])
        out["after"] = await ctx.memory.search("passport")
        tree = await ctx.tasks.create("Groceries")
        milk = await ctx.tasks.add(tree["id"], "Milk", output="two litres", status="done")
        out["question"] = await ctx.tasks.classify(tree["id"], "How much milk?")
        out["removed"] = await ctx.tasks.file(tree["id"], "Remove the milk.")
        out["kept"] = await ctx.tasks.file(tree["id"], "Actually, keep the milk.")
        out["added"] = await ctx.tasks.file(tree["id"], "Add six eggs.")
        out["state"] = await ctx.tasks.get(tree["id"])
        out["prompt"] = await ctx.tasks.prompt(tree["id"], milk["id"], budget=200)
        out["tools"] = await ctx.tools.list()
        try:
            await ctx.tasks.get(tree["id"] + 999)
        except AiosError as exc:
            out["bad_tree"] = exc.one_line()
        child = await ctx.spawn("sdk-child", "wait")
        await ctx.kill(child)
        out["child"] = await ctx.wait(child)
        ctx.log.info("sdk agent done")
        return "ok"


class SdkChild(Agent):
    manifest = Manifest(name="sdk-child")

    async def run(self, ctx: Context, goal: str) -> str | None:
        await anyio.sleep_forever()
        return None


class Plugins:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Sdk, SdkChild]


async def test_every_facade_goes_through_the_kernel(tmp_path: Path) -> None:
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Plugins(), name="sdk-test")
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(20):
            async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
                info = await kernel.wait(await kernel.spawn("sdk", "go"))
        assert info["state"] == "exited", info.get("error")
        audited = {row[0] for row in store.db.execute("SELECT syscall FROM audit").fetchall()}
    finally:
        store.close()
    out = _OUT
    assert out["complete"]  # the fake echoes; complete() joins the stream
    assert [b["label"] for b in out["core"]["blocks"] + out["core"]["pending"]] == ["persona"]
    assert out["archived"]["id"] in [f["id"] for f in out["found"]]
    assert out["got"]["text"] == "Passport renewal takes six weeks." and out["got"]["tags"] == ["trip"]
    assert out["archived"]["id"] not in [f["id"] for f in out["after"]]
    assert (out["question"]["kind"], out["question"]["by"]) == ("question", "rule")
    assert out["removed"]["kind"] == "update" and out["kept"]["restore"] is True
    assert out["added"]["kind"] == "new_step" and out["added"]["new"] is True
    live = {n["title"]: n for n in out["state"]["nodes"] if n["status"] != "superseded"}
    assert live["Milk"]["output"] == "two litres"  # removed, then kept: rolled back to its value
    assert "Six eggs" in live
    assert "Milk: two litres" in out["prompt"]
    assert all("." in t["name"] for t in out["tools"])  # server.tool names, whatever is configured
    assert f"t{out['state']['tree']['id'] + 999}" in out["bad_tree"]
    assert out["child"]["state"] == "exited"
    assert {"task.classify", "mem.core_set", "proc.spawn", "proc.kill"} <= audited


class _BareLLM:
    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.schemas: list[Any] = []

    def chat(self, messages: Any, **kwargs: Any) -> AsyncIterator[str]:
        self.schemas.append(kwargs.get("json_schema"))
        reply = self.replies.pop(0)

        async def stream() -> AsyncIterator[str]:
            yield reply

        return stream()


class _Bare:
    """The primitives a runner provides, and nothing else."""

    pid, name, interactive = 7, "bare", True

    def __init__(self, replies: list[str]) -> None:
        self.llm = _BareLLM(replies)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.written: list[str] = []

    async def call(self, syscall: str, **payload: Any) -> Any:
        self.calls.append((syscall, payload))
        return {"tools": [], "results": [], "pid": 9}

    async def write(self, text: str) -> None:
        self.written.append(text)

    async def end_turn(self) -> None:
        self.written.append("<end>")

    async def input(self) -> str | None:
        return "blue"


async def test_the_api_over_a_bare_runner_context() -> None:
    bare = _Bare(['{"n": 3}', '{"choice": "red"}', "nope", '{"choice": "mauve"}'])
    ctx = as_context(bare)
    with anyio.fail_after(5):
        assert await ctx.llm.json("a number", {"type": "object"}) == {"n": 3}
        assert await ctx.llm.choose("a colour", ["red", "blue"]) == "red"
        assert bare.llm.schemas[1]["properties"]["choice"] == {"enum": ["red", "blue"]}
        with pytest.raises(ModelError, match="not JSON"):
            await ctx.llm.json("a number", {"type": "object"})
        with pytest.raises(ModelError, match="none of the options"):
            await ctx.llm.choose("a colour", ["red", "blue"])
        assert await ctx.llm.choose("only one", ["red"]) == "red"  # no call needed
        assert await ctx.ask_user("Which colour?") == "blue"
        assert bare.written == ["Which colour?\n", "<end>"]
        await ctx.tools.search("weather", limit=2)
        await ctx.tools.call("time.now", {"tz": "UTC"}, timeout_s=3)
        await ctx.fs.search("backups", k=3)
        assert await ctx.spawn("worker", "x", caps={"tools": ["time.*"]}) == 9
    assert bare.calls == [
        ("tool.search", {"query": "weather", "limit": 2}),
        ("tool.call", {"tool": "time.now", "args": {"tz": "UTC"}, "timeout_s": 3}),
        ("fs.search", {"query": "backups", "k": 3}),
        ("proc.spawn", {"agent": "worker", "goal": "x", "caps": {"tools": ["time.*"]}}),
    ]
    assert as_context(ctx) is ctx


async def test_an_agent_receives_the_full_context_whatever_the_runner_passes() -> None:
    seen: list[Any] = []

    class Probe(Agent):
        manifest = Manifest(name="probe")

        async def run(self, ctx: Context, goal: str) -> str | None:
            seen.append(ctx)
            return (await ctx.tasks.create(goal))["ok"]

    class Runner(_Bare):
        async def call(self, syscall: str, **payload: Any) -> Any:
            return {"ok": f"{syscall}:{payload['title']}"}

    with anyio.fail_after(5):
        assert await Probe().run(Runner([]), "trip") == "task.create:trip"
    assert isinstance(seen[0], Context)
