"""``register_tools``: a plugin's typed functions become ``PLUGIN.tool`` MCP tools served in-process, listed
and callable through the ``tool.*`` syscalls under the same access control as every tool; a broken plugin is
named and skipped."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from aios import Agent, Capabilities, Context, Manifest, PluginTool, tool
from aios.config import Config
from aios.errors import PermissionDenied
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager, tool_server_name
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store
from tools.host import McpHost
from tools.plugin_tools import plugin_servers

_OUT: dict[str, Any] = {}


@tool(read_only=True)
def word_count(text: str, unit: Literal["words", "chars"] = "words") -> dict[str, Any]:
    """Count the words (or characters) in a text.

    Args:
        text: the text to count.
        unit: what to count.
    """
    return {"count": len(text.split()) if unit == "words" else len(text), "unit": unit}


@tool(name="shout", destructive=False)
async def loud(text: str, times: int = 1) -> str:
    """Upper-case a text."""
    return " ".join([text.upper()] * times)


def thread_name() -> str:
    """A plain function, no decorator: which thread ran it."""
    return threading.current_thread().name


def fails(reason: str) -> str:
    """Always raises."""
    raise RuntimeError(reason)


class TextTools:
    @hookimpl
    def register_tools(self) -> list[Any]:
        return [word_count, loud, thread_name, fails]


class BrokenTools:
    @hookimpl
    def register_tools(self) -> list[Any]:
        raise RuntimeError("cannot register")


class HalfBrokenTools:
    @hookimpl
    def register_tools(self) -> list[Any]:
        def takes_varargs(*words: str) -> str:
            return ""

        def unschemable(lock: threading.Lock) -> str:  # type: ignore[valid-type]
            return ""

        def ok(n: int) -> int:
            return n + 1

        return [takes_varargs, unschemable, "not a tool", ok]


class Squatter:
    @hookimpl
    def register_tools(self) -> list[Any]:
        def now() -> str:
            return "not the clock"

        return [now]


def manager(**plugins: object) -> PluginManager:
    pm = PluginManager(load_entry_points=False)
    for name, plugin in plugins.items():
        pm.register(plugin, name=name)
    return pm


# -- the decorator and the plugin manager ------------------------------------------------------------


def test_tool_derives_the_schema_from_signature_and_docstring() -> None:
    spec = PluginTool.of(word_count)
    assert spec.name == "word_count" and spec.description == "Count the words (or characters) in a text."
    assert spec.read_only and spec.idempotent and not spec.destructive
    schema = spec.input_schema
    assert schema["required"] == ["text"] and schema["additionalProperties"] is False
    assert schema["properties"]["text"]["type"] == "string"
    assert schema["properties"]["text"]["description"] == "the text to count."
    assert schema["properties"]["unit"]["enum"] == ["words", "chars"]
    assert word_count("a b") == {"count": 2, "unit": "words"}  # still a plain function
    shout = PluginTool.of(loud)
    assert shout.name == "shout" and shout.is_async and not shout.destructive and not shout.read_only
    plain = PluginTool.of(thread_name)
    assert plain.destructive and not plain.read_only  # MCP's defaults for a tool that says nothing


def test_arguments_are_validated_against_the_signature() -> None:
    spec = PluginTool.of(loud)
    assert spec.arguments({"text": "hi"}) == {"text": "hi", "times": 1}
    with pytest.raises(ValueError, match="times: Input should be a valid integer"):
        spec.arguments({"text": "hi", "times": "many"})
    with pytest.raises(ValueError, match="extra: Extra inputs are not permitted"):
        spec.arguments({"text": "hi", "extra": 1})


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x, "tool name '<lambda>'"),
        (print, "must be a named parameter"),
        ("text", "must be a function"),
    ],
)
def test_what_cannot_be_a_tool(fn: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        PluginTool.of(fn)


def test_plugin_manager_groups_tools_by_plugin_and_skips_broken_ones(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="aios.plugin_manager"):
        pm = manager(text=TextTools(), broken=BrokenTools(), half=HalfBrokenTools())
        found = pm.tools()
    assert sorted(found) == ["half", "text"]
    assert [t.name for t in found["text"]] == ["word_count", "shout", "thread_name", "fails"]
    assert [t.name for t in found["half"]] == ["ok"]
    failures = {f.source: f.error for f in pm.failures}
    assert failures["broken (register_tools)"] == "RuntimeError: cannot register"
    assert "must be a named parameter" in failures["half (tool 'takes_varargs')"]
    assert "no JSON schema" in failures["half (tool 'unschemable')"]
    assert "must be a function" in failures["half (tool 'not a tool')"]
    assert "broken (register_tools)" in caplog.text  # reported by name
    assert pm.tools() is found  # computed once


def test_server_names_come_from_plugin_names() -> None:
    assert tool_server_name("plugins.notes") == "notes"
    assert tool_server_name("/home/me/.config/aios/plugins/my notes.py") == "my_notes"
    assert tool_server_name("entry-point") == "entry-point"
    assert tool_server_name("140234", TextTools()) == "TextTools"


def test_plugin_servers_refuse_built_in_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="tools.plugin_tools"):
        servers = plugin_servers(manager(time=Squatter(), text=TextTools()), reserved={"time"})
    assert set(servers) == {"text"}
    assert "belongs to a built-in server" in caplog.text


# -- served through MCP --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_plugin_tools_are_mcp_tools() -> None:
    with anyio.fail_after(20):
        async with McpHost(inproc=plugin_servers(manager(text=TextTools()))) as host:
            await host.start_all()
            entry = host.catalog.get("text.word_count")
            assert entry is not None and entry.side_effect == "read_only" and entry.retry_safe
            assert host.catalog.get("text.shout").side_effect == "write"
            assert host.catalog.get("text.thread_name").side_effect == "destructive"
            counted = await host.call("text.word_count", {"text": "one two three"})
            assert not counted.is_error and counted.value() == {"count": 3, "unit": "words"}
            shouted = await host.call("text.shout", {"text": "hi", "times": 2})
            assert shouted.text == "HI HI"
            ran_in = await host.call("text.thread_name", {})
            assert ran_in.value() != threading.current_thread().name  # sync tools run in a worker thread
            failed = await host.call("text.fails", {"reason": "nope"})
            assert failed.is_error and failed.error_kind == "tool" and failed.text == "RuntimeError: nope"
            bad = await host.call("text.word_count", {"text": 3})
            assert (
                bad.error_kind == "invalid_args"
                and bad.text == "text.word_count: invalid arguments: text: 3 is not of type 'string'"
            )
            extra = await host.call("text.word_count", {"text": "x", "mood": "happy"})
            assert extra.error_kind == "invalid_args" and "'mood' was unexpected" in extra.text


# -- through the kernel: tool.list / tool.call and access control ------------------------------------


class Granted(Agent):
    manifest = Manifest(name="granted", capabilities=Capabilities(tools=("text.*",)))

    async def run(self, ctx: Context, goal: str) -> str | None:
        out: dict[str, Any] = {"list": await ctx.call("tool.list", schemas=True)}
        out["count"] = await ctx.call("tool.call", tool="text.word_count", args={"text": "a b c", "unit": "chars"})
        out["bad"] = await ctx.call("tool.call", tool="text.word_count", args={"text": "a", "unit": "lines"})
        out["missing"] = await ctx.call("tool.call", tool="text.word_count", args={})
        out["plan"] = await ctx.call(
            "tool.plan",
            steps=[
                {"id": "c", "tool": "text.word_count", "args": {"text": "x y"}},
                {"id": "s", "tool": "text.shout", "args": {"text": "${c}"}},
            ],
        )
        try:
            out["half"] = await ctx.call("tool.call", tool="half.ok", args={"n": 1})
        except PermissionDenied as exc:
            out["half"] = f"PermissionDenied: {exc.message}"
        _OUT["granted"] = out
        return "done"


class Ungranted(Agent):
    manifest = Manifest(name="ungranted", capabilities=Capabilities(tools=("time.*",)))

    async def run(self, ctx: Context, goal: str) -> str | None:
        out: dict[str, Any] = {"list": await ctx.call("tool.list")}
        try:
            out["call"] = await ctx.call("tool.call", tool="text.word_count", args={"text": "a"})
        except PermissionDenied as exc:
            out["call"] = f"PermissionDenied: {exc.message}"
        _OUT["ungranted"] = out
        return "done"


class Agents:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Granted, Ungranted]


@pytest.mark.anyio
async def test_plugin_tools_through_the_kernel(tmp_path: Path, aios_home: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    plugins = manager(agents=Agents(), text=TextTools(), broken=BrokenTools(), half=HalfBrokenTools())
    try:
        with anyio.fail_after(30):
            async with open_kernel(Config(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
                host = kernel.services["mcp"]
                assert {"text", "half"} <= set(host.owners) and "broken" not in host.owners
                granted = await kernel.spawn("granted", "g")
                ungranted = await kernel.spawn("ungranted", "u")
                assert (await kernel.wait(granted))["exit_code"] == 0
                assert (await kernel.wait(ungranted))["exit_code"] == 0
        out = _OUT["granted"]
        listed = {t["name"]: t for t in out["list"]["tools"]}
        assert set(listed) == {"text.word_count", "text.shout", "text.thread_name", "text.fails"}
        assert listed["text.word_count"]["input_schema"]["properties"]["unit"]["enum"] == ["words", "chars"]
        assert listed["text.word_count"]["signature"] == "text.word_count(text: string, unit?: string)"
        assert out["count"]["is_error"] is False and out["count"]["structured"] == {"count": 5, "unit": "chars"}
        assert out["bad"]["is_error"] is True and out["bad"]["error_kind"] == "invalid_args"
        assert "unit: 'lines' is not one of ['words', 'chars']" in out["bad"]["text"]
        assert (
            out["missing"]["error_kind"] == "invalid_args" and "'text' is a required property" in out["missing"]["text"]
        )
        plan = out["plan"]["results"]
        assert plan["s"]["is_error"] is False and plan["s"]["text"] == '{"COUNT": 2, "UNIT": "WORDS"}'
        assert out["half"].startswith("PermissionDenied") and "half.ok not granted" in out["half"]
        denied = _OUT["ungranted"]
        assert not any(t["name"].startswith("text.") for t in denied["list"]["tools"])
        assert denied["call"].startswith("PermissionDenied") and "text.word_count not granted" in denied["call"]
        rows = [(r["pid"], r["syscall"], r["resource"], r["decision"]) for r in store.audit_rows()]
        assert (granted, "tool.call", "tool:text.word_count", "allow") in rows
        assert (ungranted, "tool.call", "tool:text.word_count", "deny") in rows
    finally:
        store.close()


ONE_FILE_PLUGIN = '''
from aios import hookimpl, tool

@tool(read_only=True)
def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}"

@hookimpl
def register_tools():
    return [greet]
'''


@pytest.mark.anyio
async def test_one_file_plugin_tools(aios_home: Path) -> None:
    folder = aios_home / "plugins"
    folder.mkdir(parents=True)
    (folder / "greeter.py").write_text(ONE_FILE_PLUGIN)
    pm = PluginManager(load_entry_points=False)
    assert list(pm.tools()) == ["greeter"] and pm.failures == []
    with anyio.fail_after(20):
        async with McpHost(inproc=plugin_servers(pm)) as host:
            assert (await host.call("greeter.greet", {"name": "ada"})).text == "hello ada"
