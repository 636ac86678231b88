"""The engine pool over two real OpenAI-compatible servers on the bundled model, one killed mid-run.

Two kinds of server, each run as two processes on free ports:

- ``llama-server``: llama.cpp's native server, built once from the pinned llama-cpp-python sdist into a cache
  by ``make llama-server`` (``bench/build_llama_server.sh``), which ``make test`` and ``make bench`` run first;
  where that build failed (no cmake, say) or a bare ``pytest`` runs before it, that case is skipped and says
  how to build it;
- ``llama_cpp.server``: the Python server of the pinned bindings (installed with ``.[test]``), always run, so
  CI kills a real server mid-run too. It ignores ``continue_final_message``: a reply continued there is the
  text so far and a new assistant turn, not one seamless reply (llama-server, vLLM and SGLang continue it).

Agents of several turns each share a system prompt; once one of them is streaming from the first server,
that server gets SIGKILL. Every agent must still finish every turn with an answer, the pool must mark the
server dead, and when the server is started again on its port, the pool must bring it back and use it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from aios.api import ChatMessage
from aios.config import LLMServer, PoolConfig
from aios.models import bundled_model_path
from kernel.backends.base import SamplingParams
from kernel.engine_pool import EnginePool

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = (
    "You are a careful assistant inside an agent operating system. You answer in one or two short sentences. "
    "Tools you may mention: fs.read (read a file), fs.write (write a file), mem.get (recall a note), "
    "mem.put (store a note), tool.call (call an MCP tool). Never invent file names."
)
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is 12 plus 7?"]
#: ``ignore_eos``: every turn generates exactly this many tokens, so the kill lands mid-stream.
PARAMS = SamplingParams(max_tokens=40, temperature=0.0, repeat_penalty=1.0, ignore_eos=True)
AGENTS = 4
POOL = PoolConfig(health_interval_s=0.5, health_timeout_s=5.0, backoff_initial_s=0.2, backoff_max_s=1.0)


def _version() -> str:
    match = re.search(r"llama-cpp-python==([0-9.]+)", (ROOT / "pyproject.toml").read_text())
    assert match is not None
    return match.group(1)


def llama_server_binary() -> Path:
    """Where ``bench/build_llama_server.sh`` puts the binary (``AIOS_BENCH_CACHE`` or ~/.cache/aios-bench)."""
    cache = Path(os.environ.get("AIOS_BENCH_CACHE", Path.home() / ".cache" / "aios-bench"))
    return cache / f"llama-server-{_version()}" / "bin" / "llama-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One server process on a fixed port, which can be killed and started again on that port."""

    def __init__(self, kind: str, log_dir: Path, name: str) -> None:
        self.kind = kind
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        model = str(bundled_model_path())
        if kind == "llama-server":
            self.command = [
                str(llama_server_binary()), "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
                "-t", "1", "-tb", "1", "-np", "2", "-c", "4096", "--cont-batching", "--no-webui",
            ]  # fmt: skip
            self.ready_path = "/health"
        else:
            self.command = [
                sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
                "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1",
                "--interrupt_requests", "false",
            ]  # fmt: skip
            self.ready_path = "/v1/models"

    def start(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{self.kind} did not answer in 90 s:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no goodbye to open connections."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["llama-server", "llama_cpp.server"])
def servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    kind = str(request.param)
    if kind == "llama-server" and not os.access(llama_server_binary(), os.X_OK):
        pytest.skip(
            f"native llama-server not built ({llama_server_binary()} missing): run `make llama-server` "
            "(`make test` and `make bench` run it; bench/build_llama_server.sh) to build it once into the cache"
        )
    pair = [ServerProcess(kind, tmp_path, "a"), ServerProcess(kind, tmp_path, "b")]
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()


async def _wait_for(condition: object, what: str, timeout: float) -> None:
    assert callable(condition)
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


async def test_agents_go_on_when_a_server_is_killed_mid_run(servers: list[ServerProcess]) -> None:
    first, second = servers
    capacity = 2 if first.kind == "llama-server" else 1
    pool = EnginePool([LLMServer(url=s.url, max_concurrency=capacity) for s in servers], pool=POOL, aging_s=60.0)
    pool.start()
    try:
        answers: dict[int, list[str]] = {}
        attempts: dict[int, list[float]] = {}
        streaming: dict[int, int] = {}  # pieces received so far in the current turn, per agent

        async def agent(key: int) -> None:
            messages: list[ChatMessage] = [{"role": "system", "content": SYSTEM}]
            for question in QUESTIONS:
                messages.append({"role": "user", "content": f"(agent {key}) {question}"})
                generation = pool.submit(key, PARAMS, messages=messages)
                pieces: list[str] = []
                streaming[key] = 0
                async for piece in generation:
                    pieces.append(piece)
                    streaming[key] += 1
                assert generation.stats is not None
                answer = "".join(pieces)
                answers.setdefault(key, []).append(answer)
                attempts.setdefault(key, []).append(generation.stats.extra["attempts"])
                messages.append({"role": "assistant", "content": answer})

        def streaming_from_first() -> bool:
            return any(
                pool.context_info.get(key, {}).get("server") == first.url and n >= 3 for key, n in streaming.items()
            )

        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg:
                for key in range(1, AGENTS + 1):
                    tg.start_soon(agent, key)
                await _wait_for(streaming_from_first, "an agent streaming from the first server", 120)
                first.kill()

        assert sorted(answers) == list(range(1, AGENTS + 1))
        for key, replies in answers.items():
            assert len(replies) == len(QUESTIONS), f"agent {key} did not finish: {replies}"
            assert all(reply.strip() for reply in replies), f"agent {key} got an empty answer: {replies}"
        status = {s["url"]: s for s in pool.server_status()}
        assert status[first.url]["state"] == "down" and status[first.url]["failures"] >= 1
        assert status[second.url]["state"] == "up"
        assert pool.reroutes >= 1
        assert any(n >= 2 for turns in attempts.values() for n in turns), "a request was continued elsewhere"

        # Started again on its port: the pool probes it back and sends it work.
        served_before = status[first.url]["served"]
        await anyio.to_thread.run_sync(first.start)
        await _wait_for(lambda: pool.server_status()[0]["state"] == "up", "the restarted server back", 30)
        with anyio.fail_after(240):
            async with anyio.create_task_group() as tg:
                for key in range(AGENTS + 1, 2 * AGENTS + 1):
                    tg.start_soon(agent, key)
        assert all(len(answers[key]) == len(QUESTIONS) for key in range(AGENTS + 1, 2 * AGENTS + 1))
        assert pool.server_status()[0]["served"] > served_before, "the restarted server is used again"
    finally:
        with anyio.CancelScope(shield=True):
            await pool.aclose()


@pytest.mark.parametrize("servers", ["llama-server"], indirect=True)
async def test_a_reply_cut_by_a_kill_is_continued_seamlessly(servers: list[ServerProcess]) -> None:
    """Greedy, one request at a time: the reply continued on the second server after the first was killed
    mid-stream is the very reply the second server gives uninterrupted."""
    first, second = servers  # (llama_cpp.server does not continue a final assistant message)
    messages: list[ChatMessage] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Explain what a kernel does in an operating system."},
    ]
    params = SamplingParams(max_tokens=40, temperature=0.0, repeat_penalty=1.0)
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"messages": messages, "max_tokens": 40, "temperature": 0.0, "repeat_penalty": 1.0}
        response = await client.post(f"{second.url}/v1/chat/completions", json=body)
        reference = response.json()["choices"][0]["message"]["content"]
    pool = EnginePool([LLMServer(url=s.url, max_concurrency=2) for s in servers], pool=POOL, aging_s=60.0)
    pool.start()
    try:
        with anyio.fail_after(120):
            await _wait_for(lambda: all(s["state"] == "up" for s in pool.server_status()), "both probed up", 30)
            generation = pool.submit(1, params, messages=messages)
            pieces: list[str] = []
            async for piece in generation:
                pieces.append(piece)
                if len(pieces) == 8:
                    assert pool.context_info[1]["server"] == first.url  # the first route of a fresh pool
                    first.kill()
        assert generation.stats is not None and generation.stats.extra["attempts"] == 2
        assert "".join(pieces) == reference
        assert [url for _, url in pool.routes] == [first.url, second.url]
    finally:
        with anyio.CancelScope(shield=True):
            await pool.aclose()


@pytest.mark.parametrize("servers", ["llama_cpp.server"], indirect=True)
async def test_kernel_chat_agents_finish_on_a_pool_that_loses_a_server(
    servers: list[ServerProcess], tmp_path: Path
) -> None:
    """`[llm] backend = "pool"`: the same kernel, chat agents and syscalls; one server killed while they run."""
    from aios.config import Config, LLMConfig
    from kernel import open_kernel
    from memory.store import Store

    first, _ = servers
    llm = LLMConfig(
        backend="pool",
        servers=[LLMServer(url=s.url, max_concurrency=1) for s in servers],
        pool=POOL,
        temperature=0.0,
        max_tokens=48,
    )
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(240):
            async with open_kernel(Config(llm=llm), store=store) as kernel:
                pool = kernel.engine
                assert isinstance(pool, EnginePool)
                goals = ["Say hi.", "Name a colour.", "What is 2 plus 2?", "Name a fruit."]
                pids = [await kernel.spawn("chat", goal, interactive=False) for goal in goals]
                await _wait_for(lambda: pool.server_status()[0]["in_flight"] > 0, "a request on the first server", 120)
                first.kill()
                infos = [await kernel.wait(pid) for pid in pids]
                status, reroutes = pool.server_status(), pool.reroutes
    finally:
        store.close()
    for info in infos:
        assert info["state"] == "exited", info
        assert info["result"], info
    assert status[0]["state"] == "down" and status[1]["state"] == "up"
    assert reroutes >= 1, "the request cut by the kill went on on the other server"
