"""The listing syscalls front ends show (task.trees, task.show, mem.namespaces): what each caller may see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.config import AccessConfig, AgentGrant, Config
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store

pytestmark = pytest.mark.anyio

_SCRIPTS: dict[str, Any] = {}
_RESULTS: dict[str, Any] = {}


class Writer(Agent):
    manifest = Manifest(name="fwriter", capabilities=Capabilities(memory_write=("team:*",)))

    async def run(self, ctx: Context, goal: str) -> str | None:
        _RESULTS[goal] = await _SCRIPTS[goal](ctx)
        return "done"


class Stranger(Writer):
    manifest = Manifest(name="fstranger")


class Plugins:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Writer, Stranger]


async def _write(ctx: Context) -> dict[str, Any]:
    tree = await ctx.call("task.create", title="Plan a trip")
    step = await ctx.call("task.add", tree=tree["id"], title="Hotel", output="Alfama")
    await ctx.call("task.update", tree=tree["id"], node=step["id"], output="Baixa")
    await ctx.call("mem.archive", text="Passport expires in 2031", tags=["trip"])
    await ctx.call("mem.archive", namespace="team:notes", text="Standup at nine")
    return {"tree": tree["id"], "step": step["id"]}


async def _look(ctx: Context) -> dict[str, Any]:
    return {"trees": await ctx.call("task.trees"), "namespaces": await ctx.call("mem.namespaces")}


async def _session(path: Path, user: AgentGrant, work: Any) -> Any:
    _SCRIPTS["write"], _SCRIPTS["look"] = _write, _look
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Plugins(), name="test-plugins")
    store = Store.open(path)
    try:
        with anyio.fail_after(20):
            config = Config(access=AccessConfig(user=user))
            async with open_kernel(config, runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
                for agent, goal in (("fwriter", "write"), ("fstranger", "look")):
                    info = await kernel.wait(await kernel.spawn(agent, goal))
                    assert info["state"] == "exited", info
                return await work(kernel)
    finally:
        store.close()


async def test_each_caller_sees_what_its_grants_cover(tmp_path: Path) -> None:
    async def as_user(kernel: Any) -> dict[str, Any]:
        ids = _RESULTS["write"]
        return {
            "trees": await kernel.call("task.trees", nodes=True),
            "by_owner": await kernel.call("task.trees", owner="nobody"),
            "show": await kernel.call("task.show", node=ids["step"]),
            "namespaces": await kernel.call("mem.namespaces"),
        }

    out = await _session(tmp_path / "aios.db", AgentGrant(), as_user)
    ids = _RESULTS["write"]
    (tree,) = out["trees"]
    assert tree["id"] == ids["tree"] and tree["owner"] == "fwriter"
    assert [n["title"] for n in tree["nodes"]] == ["Plan a trip", "Hotel"]
    assert out["by_owner"] == []
    assert out["show"]["output"] == "Baixa" and [v["output"] for v in out["show"]["versions"]] == ["Alfama", "Baixa"]
    by_ns = {row["namespace"]: row for row in out["namespaces"]}
    assert by_ns["agent:fwriter"]["archival"] == 1 and by_ns["team:notes"]["archival"] == 1
    # the stranger (no memory grants) sees neither the writer's tree nor its namespaces
    assert _RESULTS["look"]["trees"] == []
    assert {row["namespace"] for row in _RESULTS["look"]["namespaces"]} <= {"agent:fstranger"}


async def test_the_users_access_config_narrows_what_they_see(tmp_path: Path) -> None:
    async def as_user(kernel: Any) -> dict[str, Any]:
        step = _RESULTS["write"]["step"]
        try:
            await kernel.call("task.show", node=step)
        except AiosError as exc:
            refused = f"{type(exc).__name__}: {exc.message}"
        return {
            "trees": await kernel.call("task.trees"),
            "namespaces": await kernel.call("mem.namespaces"),
            "refused": refused,
            "missing": await _error(kernel.call("task.show", node=4242)),
        }

    out = await _session(tmp_path / "aios.db", AgentGrant(memory_read=["team:*"], memory_write=["team:*"]), as_user)
    assert out["trees"] == []
    assert [row["namespace"] for row in out["namespaces"]] == ["team:notes"]
    assert out["refused"].startswith("PermissionDenied:") and "belongs to agent fwriter" in out["refused"]
    assert out["missing"] == "NodeNotFound: no task node n4242"


async def _error(coro: Any) -> str:
    try:
        await coro
    except AiosError as exc:
        return f"{type(exc).__name__}: {exc.message}"
    raise AssertionError("expected an error")


async def test_servers_tried_from_another_file_are_checked_like_any_tool_call(tmp_path: Path) -> None:
    """tool.try: the file the servers come from is a read, each tool a call (each of a plan's steps too)."""
    import json

    from tests.mcp_servers import slow_server_spec

    other = tmp_path / "try" / "mcp.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"mcpServers": {"slow": slow_server_spec()}}))
    echo = {"id": "e", "tool": "slow.echo", "args": {"text": "hi"}}
    add = {"id": "a", "tool": "slow.add", "args": {"a": 1, "b": 2}}

    async def as_user(kernel: Any) -> dict[str, Any]:
        where = str(other)
        return {
            "echo": await kernel.call(
                "tool.try", action="call", mcp_config=where, tool="slow.echo", args={"text": "x"}
            ),
            "add": await _error(kernel.call("tool.try", action="call", mcp_config=where, tool="slow.add", args={})),
            "plan": await _error(kernel.call("tool.try", action="plan", mcp_config=where, plan={"steps": [echo, add]})),
            "file": await _error(kernel.call("tool.try", action="tools", mcp_config="/etc/aios-mcp.json")),
            "bad": await _error(kernel.call("tool.try", action="delete", mcp_config=where)),
            "rows": await anyio.to_thread.run_sync(lambda: kernel.audit_rows(agent="user", limit=100)),
        }

    grant = AgentGrant(tools=["slow.echo"], files_read=[str(tmp_path)], files_write=[str(tmp_path)])
    out = await _session(tmp_path / "aios.db", grant, as_user)
    assert out["echo"]["result"]["text"] == "x" and not out["echo"]["result"]["is_error"]
    assert out["add"].startswith("PermissionDenied:") and "tool slow.add not granted" in out["add"]
    assert out["plan"].startswith("PermissionDenied:") and "slow.add" in out["plan"]  # refused before any step ran
    assert out["file"].startswith("PermissionDenied:") and "/etc/aios-mcp.json" in out["file"]
    assert out["bad"].startswith("UsageError:") and "invalid request" in out["bad"]
    denied = {(r["syscall"], r["resource"]) for r in out["rows"] if r["decision"] == "deny"}
    assert ("tool.try", "tool:slow.add (write)") in denied and ("tool.try", "file:/etc/aios-mcp.json") in denied
