"""MCP elicitation end to end: a real stdio server's tool asks for a form (name, age) during a call; the kernel
turns it into an approval request of kind ``elicit``; a front end answers accept (content checked against the
schema), decline or cancel, in process and over the socket; headless it is cancelled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from _access_kit import open_rig
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import Input, Label, Static

from aios import Agent, Capabilities, Manifest
from aios import Context as AgentContext
from aios.cli_access import _fill_terminal, prompt_approvals
from aios.config import Config
from aios.errors import AiosError, UsageError
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.client import SocketClient
from kernel.events import ApprovalRequested
from kernel.kernel import Kernel
from memory.store import Store
from tests.mcp_servers import elicit_server_spec
from tools.config import parse_servers, write_mcp_file
from tools.host import McpHost
from tui import AiosApp, make_app
from tui.approval import ElicitScreen, form_content

pytestmark = pytest.mark.anyio


def quick(headless: float = 0.0) -> Config:
    config = Config()
    config.access.headless_timeout_s = headless
    return config


@asynccontextmanager
async def elicit_kernel(tmp_path: Path, config: Config | None = None) -> AsyncIterator[Kernel]:
    write_mcp_file({"mcpServers": {"elicit": elicit_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    try:
        async with open_kernel(
            config or quick(), runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False)
        ) as kernel:
            yield kernel
    finally:
        store.close()


async def next_request(events: Any) -> ApprovalRequested:
    async for event in events:
        if isinstance(event, ApprovalRequested):
            return event
    raise AssertionError("event stream ended")


async def register(kernel: Kernel, out: dict[str, Any]) -> None:
    out["result"] = await kernel.call("tool.call", tool="elicit.register", args={})


async def test_accept_decline_cancel_through_the_kernel(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with elicit_kernel(tmp_path) as kernel:
            events = kernel.subscribe(approver=True)
            texts: dict[str, str] = {}
            for answer in ("accept", "decline", "cancel"):
                out: dict[str, Any] = {}
                async with anyio.create_task_group() as tg:
                    tg.start_soon(register, kernel, out)
                    request = await next_request(events)
                    assert (request.syscall, request.resource) == ("tool.elicit", "mcp:elicit")
                    assert request.reason == "Who should be registered?"
                    assert request.form is not None
                    assert set(request.form["properties"]) == {"name", "age"}
                    [pending] = kernel.approvals()
                    assert pending["kind"] == "elicit" and pending["form"] == request.form
                    content = None
                    if answer == "accept":
                        with pytest.raises(UsageError, match=r"age: 'abc' is not of type 'integer'"):
                            await kernel.approve(request.request_id, "accept", content={"name": "Ada", "age": "abc"})
                        with pytest.raises(UsageError, match="needs its content"):
                            await kernel.approve(request.request_id, "accept")
                        with pytest.raises(UsageError, match="unknown answer 'allow_once'"):
                            await kernel.approve(request.request_id, "allow_once")
                        assert [p["id"] for p in kernel.approvals()] == [request.request_id]  # still open
                        content = {"name": "Ada", "age": 36}
                    await kernel.approve(request.request_id, answer, content=content)
                texts[answer] = out["result"]["text"]
                assert out["result"]["is_error"] is False
            rows = [r for r in kernel.audit_rows() if r["syscall"] == "tool.elicit"]
    assert texts == {"accept": "registered Ada, 36", "decline": "declined", "cancel": "cancelled"}
    assert [(r["resource"], r["decision"]) for r in rows] == [
        ("mcp:elicit", "allow"),
        ("mcp:elicit", "deny"),
        ("mcp:elicit", "deny"),
    ]
    assert '"fields": ["age", "name"]' in rows[0]["detail"] and "Ada" not in rows[0]["detail"]


async def test_headless_elicitation_is_cancelled(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with elicit_kernel(tmp_path, quick(0.0)) as kernel:
            out: dict[str, Any] = {}
            await register(kernel, out)
            rows = [r for r in kernel.audit_rows() if r["syscall"] == "tool.elicit"]
    assert out["result"]["text"] == "cancelled"
    assert "headless" in rows[-1]["reason"]


async def test_no_handler_means_no_capability() -> None:
    """A host without an elicitation handler does not advertise the capability: the server's ask fails."""
    with anyio.fail_after(60):
        async with McpHost(parse_servers({"mcpServers": {"elicit": elicit_server_spec()}}), connect_timeout=20) as host:
            result = await host.call("elicit.register", {})
    assert result.is_error


async def test_host_handler_gets_server_message_schema() -> None:
    seen: list[tuple[str, str, list[str]]] = []

    async def handler(
        server: str, message: str, schema: dict[str, Any], meta: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        seen.append((server, message, sorted(schema["properties"])))
        return "accept", {"name": "Grace", "age": 85}

    with anyio.fail_after(60):
        async with McpHost(
            parse_servers({"mcpServers": {"elicit": elicit_server_spec()}}), connect_timeout=20, elicit=handler
        ) as host:
            result = await host.call("elicit.register", {}, meta={"k": 1})
    assert result.text == "registered Grace, 85"
    assert seen == [("elicit", "Who should be registered?", ["age", "name"])]


async def test_elicitation_over_the_socket(tmp_path: Path) -> None:
    """A front end attached to ``aios serve`` sees the form request (schema included) and answers it with
    content; bad content comes back as a clear error and the request stays open."""
    write_mcp_file({"mcpServers": {"elicit": elicit_server_spec()}})
    with anyio.fail_after(60):
        async with open_rig(tmp_path, "socket") as rig:
            async with SocketClient(rig.socket, rig.frontend_token) as front:
                events = await front.open_events(approver=True)
                # The user's tool call runs in the kernel's own thread (as in `aios serve`); this front end answers.
                assert rig.portal is not None
                future = rig.portal.start_task_soon(
                    lambda: rig.kernel.call("tool.call", tool="elicit.register", args={})
                )
                request = await next_request(events)
                assert request.syscall == "tool.elicit" and request.form is not None
                assert set(request.form["properties"]) == {"name", "age"}
                with pytest.raises(AiosError, match=r"age: 'abc' is not of type 'integer'"):
                    await front.approve(request.request_id, "accept", content={"name": "Ada", "age": "abc"})
                assert [p["kind"] for p in front.approvals()] == ["elicit"]
                await front.approve(request.request_id, "accept", content={"name": "Ada", "age": 36})
                result = await anyio.to_thread.run_sync(future.result, 30)
    assert result["text"] == "registered Ada, 36"


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    try:
        with anyio.fail_after(20):
            while not condition():
                await pilot.pause(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def form_ready(app: AiosApp) -> bool:
    return isinstance(app.screen, ElicitScreen) and isinstance(app.focused, Input)


async def test_the_tui_shows_the_form_and_submits_it(tmp_path: Path) -> None:
    write_mcp_file({"mcpServers": {"elicit": elicit_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    config = quick()
    config.access.approval_timeout_s = 60
    app = make_app(config=config, runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False))
    out: dict[str, Any] = {}
    try:
        with anyio.fail_after(90):
            async with app.run_test(size=(100, 36)) as pilot:
                await wait_for(pilot, lambda: app.kernel is not None, "the kernel")
                app.action_mode("tools")  # reachable from any mode, not just the first
                await wait_for(pilot, lambda: app.current_mode == "tools", "the tools mode")

                async def register() -> None:
                    out["result"] = await app.call("tool.call", tool="elicit.register", args={})

                async with anyio.create_task_group() as tg:
                    tg.start_soon(register)
                    await wait_for(pilot, lambda: form_ready(app), "the elicitation form")
                    form = app.screen
                    assert isinstance(form, ElicitScreen)
                    text = " ".join(str(label.render()) for label in form.query(Label))
                    assert "MCP server elicit asks" in text and "name" in text.lower() and "age" in text.lower()
                    assert "Who should be registered?" in str(form.query_one("#approval-reason", Static).render())
                    name, age = form.query_one("#field-0", Input), form.query_one("#field-1", Input)
                    assert app.focused is name
                    await pilot.press(*"Ada")
                    age.value = "abc"  # what a paste could leave: refused in the form, which stays open
                    await pilot.press("ctrl+s")
                    error = form.query_one("#elicit-error", Static)
                    await wait_for(pilot, lambda: "is not of type 'integer'" in str(error.render()), "the error")
                    assert app.screen is form and [p["kind"] for p in app.kernel.approvals()] == ["elicit"]
                    age.value = ""
                    age.focus()
                    await pilot.press("3", "6")
                    await pilot.click("#accept")
                    await wait_for(pilot, lambda: "result" in out, "the tool result")
                    assert not isinstance(app.screen, ElicitScreen)
    finally:
        store.close()
    assert out["result"]["text"] == "registered Ada, 36"


def test_form_content_types_and_checks_values() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "ok": {"type": "boolean"},
            "size": {"type": "string", "enum": ["s", "m"]},
        },
        "required": ["name", "age"],
    }
    assert form_content(schema, {"name": "Ada", "age": "36", "ok": True, "size": "m"}) == (
        {"name": "Ada", "age": 36, "ok": True, "size": "m"},
        None,
    )
    content, problem = form_content(schema, {"name": "Ada", "age": ""})
    assert content == {"name": "Ada"} and problem == "form: 'age' is a required property"
    assert form_content(schema, {"name": "Ada", "age": "x"})[1] == "age: 'x' is not of type 'integer'"


async def test_the_terminal_approver_fills_forms(tmp_path: Path) -> None:
    """`aios run` / `aios serve --prompt` ask each field on the terminal (here the prompt's stdin is scripted)."""

    def fill(event: ApprovalRequested) -> tuple[str, dict[str, Any] | None]:
        with CliRunner().isolation(input="f\nLin\nseven\n7\n"):  # "seven" is refused by the prompt, 7 taken
            return _fill_terminal(event)

    with anyio.fail_after(60):
        async with elicit_kernel(tmp_path, quick(30)) as kernel:
            out: dict[str, Any] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: prompt_approvals(kernel, fill=fill, count=1))
                while not kernel.events.has_approver():
                    await anyio.sleep(0.02)
                await register(kernel, out)
    assert out["result"]["text"] == "registered Lin, 7"


class Registrar(Agent):
    manifest = Manifest(name="registrar", capabilities=Capabilities(tools=("elicit.*",)))

    async def run(self, ctx: AgentContext, goal: str) -> str | None:
        result = await ctx.tools.call("elicit.register")
        return str(result["text"])


class Registrars:
    @hookimpl
    def register_agents(self) -> list[type[Agent]]:
        return [Registrar]


async def test_an_agents_call_names_the_agent_and_waits_for_the_form(tmp_path: Path) -> None:
    write_mcp_file({"mcpServers": {"elicit": elicit_server_spec()}})
    store = Store.open(tmp_path / "aios.db")
    plugins = PluginManager(load_entry_points=False)
    plugins.register(Registrars(), name="registrars")
    try:
        with anyio.fail_after(60):
            async with open_kernel(quick(), runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
                events = kernel.subscribe(approver=True)
                pid = await kernel.spawn("registrar", "go")
                request = await next_request(events)
                assert (request.pid, request.agent, request.syscall) == (pid, "registrar", "tool.elicit")
                assert kernel.info(pid)["state"] == "waiting_approval"
                await kernel.approve(request.request_id, "accept", content={"name": "Bo", "age": 5})
                info = await kernel.wait(pid)
                [row] = [r for r in kernel.audit_rows() if r["syscall"] == "tool.elicit"]
    finally:
        store.close()
    assert (info["exit_code"], info["result"]) == (0, "registered Bo, 5")
    assert (row["pid"], row["agent"], row["decision"]) == (pid, "registrar", "allow")


async def test_legacy_sessions_get_elicitation_create(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers on protocol 2025-11-25 and older send ``elicitation/create`` over the back-channel: the same
    handler answers it (the session is pinned to the initialize handshake here)."""
    import functools

    import mcp

    import tools.owner

    monkeypatch.setattr(tools.owner, "Client", functools.partial(mcp.Client, mode="legacy"))
    seen: list[dict[str, Any] | None] = []

    async def handler(
        server: str, message: str, schema: dict[str, Any], meta: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any] | None]:
        seen.append(meta)
        return "accept", {"name": "Old", "age": 99}

    with anyio.fail_after(60):
        async with McpHost(
            parse_servers({"mcpServers": {"elicit": elicit_server_spec()}}), connect_timeout=20, elicit=handler
        ) as host:
            result = await host.call("elicit.register", {}, meta={"aios/pid": 7})
            version = host.owners["elicit"].protocol_version
    assert result.text == "registered Old, 99"
    assert version != "2026-07-28" and seen == [{"aios/pid": 7}]
