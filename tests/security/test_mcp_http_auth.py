"""`aios mcp serve --http` is no open door: the real server in a subprocess, reached with raw HTTP and with the
MCP SDK's own client. No token, a wrong token or another scheme gets 401 and nothing else; the right token
lists and calls tools; a rotated token locks the old one out of the running server; loopback by default."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

AIOS = str(Path(sys.executable).parent / "aios")
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    # The LLM is never used by `mcp serve`; the fake backend keeps the test from loading the model.
    (home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    return {**os.environ, "AIOS_HOME": str(home)}


@dataclass
class Served:
    home: Path
    url: str
    proc: subprocess.Popen[bytes]
    stderr: Path

    @property
    def token_path(self) -> Path:
        return self.home / "mcp-http.token"

    def token(self) -> str:
        return self.token_path.read_text().strip()

    def log(self) -> str:
        return self.stderr.read_text()


def _start(home: Path, *args: str, host: str = "127.0.0.1") -> Served:
    port = _free_port()
    errfile = home.parent / f"serve-{port}.stderr"
    with errfile.open("wb") as err:
        proc = subprocess.Popen(
            [AIOS, "mcp", "serve", "--http", f"{host}:{port}", *args],
            env=_env(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    served = Served(home, f"http://127.0.0.1:{port}/mcp", proc, errfile)
    deadline = time.monotonic() + 60
    while "serving MCP on" not in served.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start (rc {proc.poll()}): {served.log()}")
        time.sleep(0.1)
    return served


def _stop(served: Served) -> None:
    served.proc.terminate()
    try:
        served.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = _start(tmp_path_factory.mktemp("mcp-http") / "home")
    yield served
    _stop(served)


def _post(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=INIT, headers={**MCP_HEADERS, **(headers or {})}, timeout=10)


def test_first_start_shows_the_token_once_and_keeps_it_private(server: Served) -> None:
    token = server.token()
    assert len(token) >= 40
    assert stat.S_IMODE(server.token_path.stat().st_mode) == 0o600
    log = server.log()
    assert log.count(token) == 1 and str(server.token_path) in log
    shown = subprocess.run([AIOS, "mcp", "token"], env=_env(server.home), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and shown.stdout.strip() == str(server.token_path)
    assert token not in shown.stdout + shown.stderr  # shown once: asking where it is does not print it


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "not-the-token"},
    ],
    ids=["none", "wrong", "empty", "basic", "no-scheme"],
)
def test_raw_http_without_the_right_token_is_401_and_nothing_is_served(server: Served, headers: dict[str, str]) -> None:
    for url in (server.url, server.url.removesuffix("/mcp") + "/", server.url + "/../other"):
        response = _post(url, headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "jsonrpc" not in response.text
    assert httpx.get(server.url, headers=headers, timeout=10).status_code == 401


def test_raw_http_with_a_token_one_character_off_is_401(server: Served) -> None:
    token = server.token()
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _post(server.url, {"Authorization": f"Bearer {near}"}).status_code == 401
    assert _post(server.url, {"Authorization": f"Bearer {token}x"}).status_code == 401
    ok = _post(server.url, {"Authorization": f"bearer {token}"})  # the scheme is case-insensitive (RFC 7235)
    assert ok.status_code == 200 and "protocolVersion" in ok.text


async def _sdk_names(url: str, token: str | None) -> list[str]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            listed = await client.call_tool("mem.list", {})
            assert not listed.is_error, listed.content
            assert listed.structured_content["namespace"] == "agent:mcp-serve"
            return names


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


@pytest.mark.anyio
async def test_sdk_client_needs_the_token(server: Served) -> None:
    with anyio.fail_after(60):
        names = await _sdk_names(server.url, server.token())
        assert {"fs.search", "mem.list", "task.list"} <= set(names) and "fs.write" not in names
        for token in (None, "wrong-" + server.token()):
            with pytest.raises(BaseException) as caught:  # the SDK wraps the refusal in exception groups
                await _sdk_names(server.url, token)
            leaves = _leaves(caught.value)
            assert any("error response" in str(e) for e in leaves), leaves


@pytest.mark.anyio
async def test_rotation_locks_out_the_old_token_in_the_running_server(server: Served) -> None:
    old = server.token()
    assert _post(server.url, {"Authorization": f"Bearer {old}"}).status_code == 200
    rotated = subprocess.run(
        [AIOS, "mcp", "token", "--rotate"], env=_env(server.home), capture_output=True, text=True, timeout=60
    )
    assert rotated.returncode == 0, rotated.stderr
    new = server.token()
    assert new != old and new in rotated.stderr  # the new token is shown once, on stderr
    assert stat.S_IMODE(server.token_path.stat().st_mode) == 0o600
    assert _post(server.url, {"Authorization": f"Bearer {old}"}).status_code == 401
    with anyio.fail_after(60):
        assert "mem.list" in await _sdk_names(server.url, new)


def test_a_deleted_token_file_refuses_everyone(server: Served) -> None:
    token = server.token()
    server.token_path.rename(server.token_path.with_suffix(".away"))
    try:
        assert _post(server.url, {"Authorization": f"Bearer {token}"}).status_code == 401
    finally:
        server.token_path.with_suffix(".away").rename(server.token_path)
    assert _post(server.url, {"Authorization": f"Bearer {token}"}).status_code == 200


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIOS, *args], env=_env(home), capture_output=True, text=True, timeout=60)


def test_non_loopback_needs_allow_remote(tmp_path: Path) -> None:
    home = tmp_path / "home"
    refused = _cli(home, "mcp", "serve", "--http", f"0.0.0.0:{_free_port()}")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "not a loopback address" in refused.stderr and "--allow-remote" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (home / "mcp-http.token").exists() and not (home / "aios.db").exists()
    bad = _cli(home, "mcp", "serve", "--http", "127.0.0.1:notaport")
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr


def test_a_busy_port_is_one_line_and_opens_no_store(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _cli(home, "mcp", "serve", "--http", f"127.0.0.1:{busy.getsockname()[1]}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in result.stderr and not (home / "aios.db").exists()


def test_allow_remote_serves_with_a_warning_and_still_needs_the_token(tmp_path: Path) -> None:
    served = _start(tmp_path / "home", "--allow-remote", host="0.0.0.0")
    try:
        assert "warning: serving on 0.0.0.0" in served.log()
        assert _post(served.url).status_code == 401
        assert _post(served.url, {"Authorization": f"Bearer {served.token()}"}).status_code == 200
    finally:
        _stop(served)


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token = home / "mcp-http.token"
    token.write_text("x" * 43 + "\n")
    token.chmod(0o644)
    result = _cli(home, "mcp", "serve", "--http", f"127.0.0.1:{_free_port()}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "readable or writable by other users" in result.stderr and "--rotate" in result.stderr
