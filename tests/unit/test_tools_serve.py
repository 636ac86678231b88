"""`aios mcp serve` from the SDK's own client over stdio: tools generated from syscall request models, calls
dispatched through the kernel under the capability set chosen on the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from kernel.mcp_export import export_tools

pytestmark = pytest.mark.anyio

AIOS = str(Path(sys.executable).parent / "aios")


def _params(home: Path, *args: str) -> StdioServerParameters:
    home.mkdir(parents=True, exist_ok=True)
    # The LLM is never used by `mcp serve`; the fake backend keeps the test from loading the model.
    (home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    return StdioServerParameters(command=AIOS, args=["mcp", "serve", *args], env={"AIOS_HOME": str(home)})


async def test_serve_over_stdio_to_the_sdk_client(aios_home: Path) -> None:
    with anyio.fail_after(60):
        async with Client(_params(aios_home, "--family", "proc", "--allow", "proc.self"), cache=None) as client:
            listed = (await client.list_tools()).tools
            assert [t.name for t in listed] == ["proc.self"]
            assert listed[0].input_schema["type"] == "object"
            result = await client.call_tool("proc.self", {})
            assert not result.is_error
            assert result.structured_content["agent"] == "mcp-serve"
            hidden = await client.call_tool("proc.test_echo_tool", {"tool": "x", "n": 1})
            assert hidden.is_error and "not exposed" in hidden.content[0].text
            bad = await client.call_tool("proc.self", {"unexpected": 1})
            assert bad.is_error and "invalid request" in bad.content[0].text


def test_default_exposure_is_read_only_verbs() -> None:
    names = {t.name for t in export_tools(["fs", "mem", "task", "proc"])}
    assert {"fs.search", "fs.cat", "mem.search", "mem.list", "task.list", "proc.self"} <= names
    assert not names & {"fs.write", "fs.delete", "fs.rollback", "mem.core_set", "mem.forget", "task.add", "proc.kill"}
    assert {t.name for t in export_tools(["fs"], ["fs.write"])} == {"fs.write"}


async def test_serve_default_families_and_http(aios_home: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    params = _params(aios_home)
    proc = subprocess.Popen(
        [params.command, *params.args, "--http", f"127.0.0.1:{port}"],
        env={**os.environ, **params.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with anyio.fail_after(60):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    await anyio.sleep(0.2)
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            # --http always needs the bearer token made on first start (tests/security/test_mcp_http_auth.py).
            token = (aios_home / "mcp-http.token").read_text().strip()
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            url = f"http://127.0.0.1:{port}/mcp"
            async with http, Client(streamable_http_client(url, http_client=http), cache=None) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"fs.search", "mem.list", "task.list"} <= names and "fs.write" not in names
                listed = await client.call_tool("mem.list", {})
                assert not listed.is_error, listed.content
                denied = await client.call_tool("mem.list", {"namespace": "someone-else"})
                assert denied.is_error and "not granted" in denied.content[0].text
    finally:
        proc.terminate()
        proc.wait(timeout=15)
