"""`aios serve` on the real bundled model (marker: model): an out-of-process agent streams an answer over the
socket token by token, and `aios run` / `aios ps` in other processes reach the same kernel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from aios.client import SocketClient
from aios.plugin_manager import PluginManager

pytestmark = pytest.mark.model

PLUGIN = """
from aios import Capabilities, Manifest
from aios.client import ExternalAgent
from aios.hookspecs import hookimpl


class Outside(ExternalAgent):
    manifest = Manifest(name="outside", interactive=True, capabilities=Capabilities(llm_token_budget=4000))


@hookimpl
def register_agents():
    return [Outside]
"""


@pytest.fixture
def daemon(aios_home: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    (aios_home / "plugins").mkdir(parents=True)
    (aios_home / "plugins" / "outside.py").write_text(PLUGIN)
    (aios_home / "config.toml").write_text("[llm]\ntemperature = 0.0\n")
    PluginManager(load_entry_points=False).approve("outside")  # the user approved it (first run asks otherwise)
    sock_dir = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp"))
    env = {**os.environ, "AIOS_HOME": str(aios_home), "AIOS_SOCKET": str(sock_dir / "k.sock")}
    proc = subprocess.Popen([sys.executable, "-m", "aios", "serve"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (sock_dir / "frontend.token").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "aios serve did not start"
            time.sleep(0.2)
        yield sock_dir / "k.sock", env
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_an_outside_agent_streams_from_the_real_model(daemon: tuple[Path, dict[str, str]]) -> None:
    sock, env = daemon

    async def main() -> tuple[list[str], dict[str, object]]:
        with anyio.fail_after(120):
            return await session()

    async def session() -> tuple[list[str], dict[str, object]]:
        async with SocketClient(sock) as front:
            pid, token = await front.spawn_with_token("outside")
            async with SocketClient(sock, token) as me:
                messages = [
                    {"role": "system", "content": "You are a helpful, concise assistant."},
                    {"role": "user", "content": "What is the capital of France? Answer in one word."},
                ]
                pieces = [p async for p in me.chat(messages, max_tokens=32)]
                await me.call("proc.exit")
            return pieces, await front.wait(pid)

    pieces, info = anyio.run(main)
    assert len(pieces) > 1 and "paris" in "".join(pieces).lower()
    assert info["completion_tokens"] > 0 and info["exit_code"] == 0

    ran = subprocess.run(
        [sys.executable, "-m", "aios", "run", "chat", "Say hello."],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0 and ran.stdout.strip(), ran.stderr
    ps = subprocess.run(
        [sys.executable, "-m", "aios", "ps", "--all", "--json"], env=env, capture_output=True, text=True
    )
    agents = [p["agent"] for p in json.loads(ps.stdout)["processes"]]
    assert agents == ["outside", "chat"]
