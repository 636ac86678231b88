"""``tool.*`` syscalls inside a real kernel (fake LLM backend): capability-filtered catalog, checked calls,
plans whose steps are each checked, egress, and built-in servers that wrap table syscalls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest
from aios.config import Config
from aios.errors import PermissionDenied
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.svc_tools import syscall_server, syscall_tools
from memory.store import Store
from tests.mcp_servers import slow_server_spec
from tools.config import ServerConfig, write_mcp_file

pytestmark = pytest.mark.anyio

_OUT: dict[str, Any] = {}


class ToolUser(Agent):
    manifest = Manifest(
        name="tool-user",
        capabilities=Capabilities(tools=("time.*", "proc.*"), tools_deny=("time.sleep",)),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        out: dict[str, Any] = {}
        out["list"] = await ctx.call("tool.list")
        out["search"] = await ctx.call("tool.search", query="what time is it in a timezone", limit=3)
        out["now"] = await ctx.call("tool.call", tool="time.now", args={"timezone": "Asia/Tokyo"})
        out["bad_tz"] = await ctx.call("tool.call", tool="time.now", args={"timezone": "Mars/Olympus"})
        out["self"] = await ctx.call("tool.call", tool="proc.self", args={})
        out["facade"] = await ctx.tools.call("time.now", {"timezone": "UTC"})
        out["facade_search"] = [t["name"] for t in await ctx.tools.search("current time", limit=2)]
        for name, payload in (
            ("denied", {"tool": "time.sleep", "args": {"seconds": 0}}),
            ("ungranted", {"tool": "slow.echo", "args": {"text": "x"}}),
            ("egress", {"tool": "web.echo", "args": {"text": "x"}}),
        ):
            try:
                out[name] = await ctx.call("tool.call", **payload)
            except PermissionDenied as exc:
                out[name] = f"PermissionDenied: {exc.message}"
        out["plan"] = await ctx.call(
            "tool.plan",
            steps=[
                {"id": "t", "tool": "time.now", "args": {"timezone": "UTC"}},
                {"id": "me", "tool": "proc.self", "args": {}},
                {"id": "nope", "tool": "time.sleep", "args": {"seconds": 0}},
            ],
        )
        _OUT[goal] = out
        return "done"


class Extras:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [ToolUser]


async def test_tool_syscalls_through_the_kernel(tmp_path: Path, aios_home: Path) -> None:
    write_mcp_file({"mcpServers": {"web": {**slow_server_spec(), "egress": True}, "slow": slow_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Extras(), name="extras")
    with anyio.fail_after(30):
        async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
            host = kernel.services["mcp"]
            await host.add_server(ServerConfig("proc", command="(in-process)"), inproc=syscall_server("proc", kernel))
            hints: list[tuple[Any, float]] = []
            hint = kernel.engine.expect_back
            kernel.engine.expect_back = lambda key, s: (hints.append((key, s)), hint(key, s))[1]  # type: ignore[method-assign]
            pid = await kernel.spawn("tool-user", "g1")
            info = await kernel.wait(pid)
            learned = kernel.tool_times.to_json()
    assert info["exit_code"] == 0, info
    # Every call that ran taught the kernel its tool's duration (denied ones never ran); from the second call
    # to a tool on, the engine heard when the caller is expected back.
    assert learned["time.now"]["calls"] == 4 and learned["time.now"]["mean_s"] >= 0.0
    assert "time.sleep" not in learned and learned["proc.self"]["calls"] == 2
    assert {key for key, _ in hints} == {pid} and len(hints) >= 3
    out = _OUT["g1"]
    names = [t["name"] for t in out["list"]["tools"]]
    assert out["list"]["prompts"] == [] and out["list"]["resources"] == []
    assert "time.now" in names and "proc.self" in names
    assert "time.sleep" not in names and not any(n.startswith("slow.") for n in names)  # the agent's view only
    assert out["search"]["tools"][0]["name"] == "time.now" and "input_schema" in out["search"]["tools"][0]
    assert out["now"]["is_error"] is False and out["now"]["structured"]["timezone"] == "Asia/Tokyo"
    assert out["bad_tz"]["is_error"] is True and "unknown timezone" in out["bad_tz"]["text"]
    assert out["facade"]["structured"]["timezone"] == "UTC" and out["facade_search"][0] == "time.now"
    assert out["self"]["structured"]["pid"] == pid and out["self"]["structured"]["agent"] == "tool-user"
    assert out["denied"].startswith("PermissionDenied") and "time.sleep is denied" in out["denied"]
    assert "slow.echo not granted" in out["ungranted"]
    assert "not granted" in out["egress"]
    plan = out["plan"]["results"]
    assert plan["t"]["is_error"] is False and plan["me"]["is_error"] is False
    assert plan["nope"]["is_error"] is True and plan["nope"]["error_kind"] == "denied"
    rows = [(r["syscall"], r["resource"], r["decision"]) for r in store.audit_rows() if r["pid"] == pid]
    assert ("tool.call", "tool:time.now", "allow") in rows
    assert ("tool.call", "tool:time.sleep", "deny") in rows
    assert ("proc.self", "", "allow") in rows  # the built-in server dispatched the wrapped syscall as this pid
    store.close()


def test_syscall_tools_have_schemas_from_request_models() -> None:
    tools = {t.name: t for t in syscall_tools("proc")}
    assert "self" in tools and tools["self"].annotations.read_only_hint
    assert tools["self"].input_schema["type"] == "object"
