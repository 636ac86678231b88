"""The MCP host against the repo's own stdio test server: calls, progress, timeouts, cancellation, faults."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.mcp_servers import ROOT, slow_server_spec
from tools.config import parse_servers
from tools.host import McpHost

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def host_with(**servers: dict[str, Any]) -> AsyncIterator[McpHost]:
    async with McpHost(parse_servers({"mcpServers": servers}), connect_timeout=20) as host:
        yield host


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def wait_for_event(log: Path, name: str, seconds: float = 5.0) -> dict[str, Any]:
    with anyio.fail_after(seconds):
        while True:
            found = [e for e in events(log) if e["event"] == name]
            if found:
                return found[0]
            await anyio.sleep(0.05)


async def test_connect_list_call_and_progress() -> None:
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec()) as host:
            result = await host.call("slow.sleep", {"seconds": 0.01})
            assert not result.is_error and result.text == "slept 0.01"
            catalog = {t.name: t for t in host.catalog.view()}
            assert catalog["slow.sleep"].side_effect == "read_only" and catalog["slow.sleep"].retry_safe
            assert catalog["slow.write_note"].side_effect == "destructive"
            assert catalog["slow.garbage"].side_effect == "destructive"  # no annotations: MCP's defaults
            seen: list[tuple[float, float | None, str | None]] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                seen.append((value, total, message))

            done = await host.call("slow.progress", {"steps": 3, "interval": 0.01}, progress=on_progress)
            assert done.text == "done after 3 steps" and done.progress_events == 3
            assert seen == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]
            structured = await host.call("slow.lookup", {"city": "Paris"})
            assert structured.value() == {"country": "France", "population": 2100000}


async def test_inactivity_timeout_is_cancelled_on_the_server(tmp_path: Path) -> None:
    log = tmp_path / "server.jsonl"
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec(env={"SLOW_SERVER_LOG": str(log)})) as host:
            result = await host.call("slow.hang", {"tag": "t1"}, timeout=0.3)
            assert result.is_error and result.error_kind == "timeout"
            assert "no result or progress for 0.3s" in result.text
            assert (await wait_for_event(log, "hang_cancelled"))["tag"] == "t1"
            # The session is still good afterwards.
            assert (await host.call("slow.echo", {"text": "still here"})).text == "still here"


async def test_progress_resets_the_timeout_but_not_the_hard_cap() -> None:
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec()) as host:
            kept_alive = await host.call("slow.progress", {"steps": 6, "interval": 0.1}, timeout=0.35)
            assert not kept_alive.is_error and kept_alive.progress_events == 6
            capped = await host.call("slow.progress", {"steps": 50, "interval": 0.05}, timeout=0.35, hard_cap=0.4)
            assert capped.error_kind == "timeout" and "hard cap of 0.4s" in capped.text


async def test_caller_cancellation_reaches_the_server(tmp_path: Path) -> None:
    log = tmp_path / "server.jsonl"
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec(env={"SLOW_SERVER_LOG": str(log)})) as host:
            await host.call("slow.echo", {"text": "warm"})
            with anyio.move_on_after(0.3):
                await host.call("slow.hang", {"tag": "caller"})
            assert (await wait_for_event(log, "hang_cancelled"))["tag"] == "caller"


async def test_errors_are_values() -> None:
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec()) as host:
            failed = await host.call("slow.fail", {"message": "nope"})
            assert failed.is_error and failed.error_kind == "tool" and "nope" in failed.text
            bad = await host.call("slow.sleep", {"seconds": "soon"})
            assert (
                bad.error_kind == "invalid_args"
                and bad.text == "slow.sleep: invalid arguments: seconds: 'soon' is not of type 'number'"
            )
            missing = await host.call("slow.sleep", {})
            assert missing.error_kind == "invalid_args" and "'seconds' is a required property" in missing.text
            extra = await host.call("slow.echo", {"text": "x"}, timeout=5)
            assert not extra.is_error
            typo = await host.call("slow.slep", {"seconds": 1})
            assert typo.error_kind == "unknown_tool" and "did you mean slow.sleep" in typo.text
            nowhere = await host.call("ghost.tool", {})
            assert nowhere.error_kind == "unknown_tool" and "servers: slow" in nowhere.text
            garbage_args = await host.call("slow.echo", "notadict")  # type: ignore[arg-type]
            assert garbage_args.error_kind == "invalid_args"


async def test_server_that_fails_to_start_or_does_not_exist() -> None:
    with anyio.fail_after(30):
        async with host_with(bad=slow_server_spec("--fail-start"), none={"command": "/nonexistent/mcp-server"}) as host:
            bad = await host.call("bad.echo", {"text": "x"})
            assert bad.error_kind == "unavailable"
            assert "failed to start" in bad.text and "refusing to start (--fail-start)" in bad.text
            none = await host.call("none.echo", {"text": "x"})
            assert none.error_kind == "unavailable" and "No such file or directory" in none.text
            states = {s["name"]: s["state"] for s in host.servers()}
            assert states["bad"] in ("failed", "reconnecting", "starting") and states["none"] != "ready"


async def test_server_killed_mid_call_is_survived() -> None:
    with anyio.fail_after(40):
        async with host_with(slow=slow_server_spec()) as host:
            assert not (await host.call("slow.echo", {"text": "before"})).is_error
            died = await host.call("slow.exit_now", {})
            assert died.is_error and died.error_kind == "unavailable"
            after = await host.call("slow.echo", {"text": "after"})
            assert not after.is_error and after.text == "after"
            assert host.owners["slow"].restarts >= 1


async def test_duplicate_listing_and_garbage_on_the_wire() -> None:
    with anyio.fail_after(30):
        async with host_with(dup=slow_server_spec("--duplicate")) as host:
            await host.start_all()
            names = [t.name for t in host.catalog.view()]
            assert names.count("dup.sleep") == 1
            assert host.servers()[0]["warnings"] == ["tool 'sleep' listed twice; keeping the first"]
            answered = await host.call("dup.garbage", {})
            assert answered.text == "answered after garbage"
            assert (await host.call("dup.echo", {"text": "ok"})).text == "ok"


async def test_allowed_and_denied_tools_and_redacted_secrets() -> None:
    spec = slow_server_spec(allowed_tools=["echo", "s*"], denied_tools=["sleep"], env={"API_TOKEN": "tok-abcdef-123"})
    with anyio.fail_after(30):
        async with host_with(slow=spec) as host:
            await host.start_all()
            assert sorted(t.name for t in host.catalog.view()) == ["slow.echo"]
            denied = await host.call("slow.sleep", {"seconds": 0})
            assert denied.error_kind == "denied" and "excluded by mcp.json" in denied.text
            echoed = await host.call("slow.echo", {"text": "the token is tok-abcdef-123"})
            assert echoed.text == "the token is ***"
            assert "tok-abcdef-123" not in json.dumps(host.servers())


async def test_destructive_calls_to_one_server_are_serialised(tmp_path: Path) -> None:
    log = tmp_path / "server.jsonl"
    with anyio.fail_after(30):
        async with host_with(slow=slow_server_spec(env={"SLOW_SERVER_LOG": str(log)})) as host:
            await host.start_all()
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(host.call, "slow.write_note", {"name": f"n{i}", "text": "x", "seconds": 0.05})
            stamps = [(e["event"], e["name"]) for e in events(log)]
            # Strictly start, end, start, end...: no two writes overlapped.
            assert [k for k, _ in stamps] == ["write_start", "write_end"] * 3
            assert all(stamps[i][1] == stamps[i + 1][1] for i in range(0, 6, 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_streamable_http_transport() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mcp_servers.slow_server", "--http", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with anyio.fail_after(30):
            while True:  # wait for the listener
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    await anyio.sleep(0.1)
            spec = {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"X-Test": "1"}}
            async with host_with(web=spec) as host:
                result = await host.call("web.add", {"a": 2, "b": 3})
                assert not result.is_error and result.value() == 5
                assert host.servers()[0]["transport"] == "http" and host.servers()[0]["headers"] == {"X-Test": "***"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_shutdown_with_servers_never_started() -> None:
    with anyio.fail_after(10):
        async with host_with(slow=slow_server_spec(), other=slow_server_spec()) as host:
            assert {s["state"] for s in host.servers()} == {"stopped"}  # on demand: nothing spawned yet


def _children(text: str) -> list[int]:
    """Pids of this process's children whose command line contains ``text``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and text in cmdline:
            found.append(int(stat.parent.name))
    return found


async def test_health_check_reconnects_a_dead_server_and_shutdown_leaves_no_process() -> None:
    with anyio.fail_after(40):
        servers = parse_servers({"mcpServers": {"slow": slow_server_spec(autostart=True)}})
        async with McpHost(servers, connect_timeout=20, health_interval=0.3) as host:
            await host.start_all()
            owner = host.owners["slow"]
            [pid] = _children("tests.mcp_servers.slow_server")
            os.kill(pid, signal.SIGKILL)
            while owner.restarts == 0 or owner.state != "ready":  # noticed and reconnected with no call made
                await anyio.sleep(0.05)
            assert _children("tests.mcp_servers.slow_server") != [pid]
            assert (await host.call("slow.echo", {"text": "alive"})).text == "alive"
        assert _children("tests.mcp_servers.slow_server") == []


async def test_server_stderr_is_logged_with_secrets_scrubbed(aios_home: Path) -> None:
    spec = slow_server_spec("--fail-start", env={"API_TOKEN": "tok-abcdef-123", "SLOW_SERVER_STDERR": "tok-abcdef-123"})
    with anyio.fail_after(30):
        async with host_with(leaky=spec) as host:
            failed = await host.call("leaky.echo", {"text": "x"})
    assert "slow_server: starting with ***" in failed.text and "tok-abcdef-123" not in failed.text
    log = (aios_home / "logs" / "mcp" / "leaky.stderr.log").read_text()
    assert "refusing to start" in log and "***" in log and "tok-abcdef-123" not in log
