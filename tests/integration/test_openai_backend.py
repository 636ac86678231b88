"""RemoteEngine against a real OpenAI-compatible server (``python -m llama_cpp.server``) on the bundled model."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from aios.api import ChatMessage
from aios.errors import AiosError
from aios.models import bundled_model_path
from kernel.backends.base import GenerationStats, SamplingParams
from kernel.remote_engine import Generation, LLMServerError, RemoteEngine

pytestmark = [pytest.mark.model, pytest.mark.anyio]

SYSTEM = "You are a helpful, concise assistant."
GREEDY = SamplingParams(max_tokens=48, temperature=0.0, repeat_penalty=1.0, seed=0)
QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "What is 12 plus 7?"]


def chat(question: str) -> list[ChatMessage]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama_cpp.server on a free port, with flash attention like the local engine's default."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.fail("llama_cpp.server needs its extra: pip install -e '.[test]' (llama-cpp-python[server])")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(bundled_model_path()), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--n_threads_batch", "2",
        "--flash_attn", "true",
        # By default a new request cuts off the one streaming (a bare [DONE]); queue them instead.
        "--interrupt_requests", "false",
    ]  # fmt: skip
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer in 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def engine(server_url: str) -> AsyncIterator[RemoteEngine]:
    remote = RemoteEngine(server_url, max_concurrency=1, aging_s=60.0)
    remote.start()
    try:
        yield remote
    finally:
        with anyio.CancelScope(shield=True):
            await remote.aclose()


async def collect(generation: Generation) -> tuple[list[str], GenerationStats]:
    pieces = [piece async for piece in generation]
    assert generation.stats is not None
    return pieces, generation.stats


async def test_chat_streams_pieces_with_stats(engine: RemoteEngine) -> None:
    params = SamplingParams(max_tokens=32, temperature=0.0, repeat_penalty=1.0)
    with anyio.fail_after(60):
        pieces, stats = await collect(engine.submit("a", params, messages=chat("Describe a cat in one sentence.")))
    assert len(pieces) > 3
    assert "".join(pieces).strip()
    assert stats.finish_reason in ("stop", "length")
    assert 0 < stats.completion_tokens <= 32
    assert stats.ttft_s is not None and stats.ttft_s > 0
    assert stats.mean_tbt_s is not None
    assert engine.context_info["a"]["residency"] == "remote"
    assert engine.steps >= len(pieces)


async def test_raw_prompt_uses_completions(engine: RemoteEngine) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
    with anyio.fail_after(60):
        pieces, stats = await collect(engine.submit("p", params, prompt="The capital of France is"))
    assert "".join(pieces).strip()
    assert stats.finish_reason == "length" and stats.completion_tokens == 8


async def test_admission_follows_priority(engine: RemoteEngine) -> None:
    params = SamplingParams(max_tokens=24, temperature=0.0, repeat_penalty=1.0, ignore_eos=True)
    results: dict[str, tuple[list[str], GenerationStats]] = {}
    with anyio.fail_after(90):
        first = engine.submit("bg1", params, messages=chat(QUESTIONS[0]), priority="background")
        second = engine.submit("bg2", params, messages=chat(QUESTIONS[1]), priority="background")
        async with anyio.create_task_group() as tg:

            async def consume(name: str, generation: Generation) -> None:
                results[name] = await collect(generation)

            tg.start_soon(consume, "bg2", second)
            pieces = []
            async for piece in first:
                pieces.append(piece)
                if len(pieces) == 1:  # the first is streaming: now a realtime request arrives
                    assert second.admitted_at is None
                    urgent = engine.submit("rt", params, messages=chat(QUESTIONS[2]), priority="realtime")
                    tg.start_soon(consume, "rt", urgent)
    assert list(engine.admissions) == ["bg1", "rt", "bg2"]
    assert urgent.first_token_at is not None and second.first_token_at is not None
    assert urgent.first_token_at < second.first_token_at
    assert results["rt"][1].queue_wait_s < results["bg2"][1].queue_wait_s
    # ignore_eos went through as min_tokens: every reply ran to max_tokens
    assert all(stats.completion_tokens == 24 and stats.finish_reason == "length" for _, stats in results.values())


async def test_suspend_holds_back_queued_requests(engine: RemoteEngine) -> None:
    params = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
    with anyio.fail_after(60):
        engine.suspend("sleepy")
        held = engine.submit("sleepy", params, messages=chat(QUESTIONS[0]))
        _, stats = await collect(engine.submit("busy", params, messages=chat(QUESTIONS[1])))
        assert stats.completion_tokens > 0
        assert held.admitted_at is None and engine.context_info["sleepy"]["suspended"] is True
        engine.resume("sleepy")
        pieces, _ = await collect(held)
    assert "".join(pieces).strip()


async def test_cancel_stops_and_next_request_works(engine: RemoteEngine) -> None:
    long = SamplingParams(max_tokens=400, temperature=0.0, repeat_penalty=1.0, ignore_eos=True)
    short = SamplingParams(max_tokens=16, temperature=0.0, repeat_penalty=1.0)
    with anyio.fail_after(60):
        generation = engine.submit("c", long, messages=chat("Write a long story about a dragon."))
        seen = 0
        async for _ in generation:
            seen += 1
            if seen == 3:
                generation.cancel()
        assert generation.stats is not None and generation.stats.finish_reason == "cancelled"
        assert generation.stats.completion_tokens < 400
        # Leaving the iteration early cancels too.
        leaver = engine.submit("c", long, messages=chat("Write a long story about a knight."))
        async for _ in leaver:
            break
        assert leaver.stats is None
        started = time.monotonic()
        pieces, stats = await collect(engine.submit("c", short, messages=chat(QUESTIONS[0])))
    assert "".join(pieces).strip() and stats.finish_reason in ("stop", "length")
    # The server stopped the cancelled streams: the next reply did not wait for 2 x 400 tokens.
    assert time.monotonic() - started < 10


async def test_server_not_there_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    remote = RemoteEngine(url, max_concurrency=2)
    remote.start()
    try:
        with anyio.fail_after(30):
            generation = remote.submit("x", GREEDY, messages=chat(QUESTIONS[0]))
            with pytest.raises(AiosError) as info:
                await collect(generation)
            # the engine keeps serving: a second request fails the same way, cleanly
            with pytest.raises(LLMServerError):
                await collect(remote.submit("y", GREEDY, prompt="hello"))
    finally:
        await remote.aclose()
    message = info.value.one_line()
    assert url in message and "cannot connect" in message
    assert "Traceback" not in message


async def _scripted(handler: httpx.MockTransport) -> tuple[list[str], BaseException | None]:
    remote = RemoteEngine("http://scripted", model="m", transport=handler)
    remote.start()
    try:
        with anyio.fail_after(10):
            pieces: list[str] = []
            try:
                async for piece in remote.submit("k", GREEDY, messages=chat("hi")):
                    pieces.append(piece)
            except AiosError as exc:
                return pieces, exc
            return pieces, None
    finally:
        await remote.aclose()


async def test_http_error_and_malformed_stream_are_clear_errors() -> None:
    def http_500(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "model exploded"}})

    pieces, error = await _scripted(httpx.MockTransport(http_500))
    assert isinstance(error, LLMServerError) and "HTTP 500" in error.message and "model exploded" in error.message

    def garbled(request: httpx.Request) -> httpx.Response:
        good = json.dumps({"choices": [{"delta": {"content": "Hel"}, "finish_reason": None}]})
        return httpx.Response(
            200, text=f"data: {good}\n\ndata: {{not json\n\n", headers={"content-type": "text/event-stream"}
        )

    pieces, error = await _scripted(httpx.MockTransport(garbled))
    assert pieces == ["Hel"]
    assert isinstance(error, LLMServerError) and "malformed stream event" in error.message

    def reports_usage(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["model"] == "m" and body["stream"] is True and body["repeat_penalty"] == 1.0
        events = [
            {"choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]},
            {"choices": [{"delta": {"content": " there"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}},
        ]
        text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    pieces, error = await _scripted(httpx.MockTransport(reports_usage))
    assert error is None and pieces == ["Hi", " there"]


async def test_greedy_matches_local_engine(server_url: str, tmp_path: Path) -> None:
    from kernel.backends.llama_runtime import LlamaRuntime
    from kernel.engine import Engine

    remote = RemoteEngine(server_url, max_concurrency=1)
    remote.start()
    local = Engine(
        LlamaRuntime(bundled_model_path(), n_seq_max=1, n_ctx_seq=2048, n_threads=2, flash_attn=True),
        swap_dir=tmp_path / "swap",
    )
    local.start()
    try:
        with anyio.fail_after(120):
            got_remote = ["".join((await collect(remote.submit(i, GREEDY, messages=chat(q))))[0])
                          for i, q in enumerate(QUESTIONS)]  # fmt: skip
            got_local = []
            for i, q in enumerate(QUESTIONS):
                local_gen = local.submit(f"solo-{i}", GREEDY, messages=chat(q))
                got_local.append("".join([piece async for piece in local_gen]))
                local.release(f"solo-{i}")
    finally:
        with anyio.CancelScope(shield=True):
            await remote.aclose()
            await local.aclose()
    assert all(text.strip() for text in got_remote)
    assert got_remote == got_local


async def test_kernel_runs_chat_agents_on_the_remote_backend(server_url: str, tmp_path: Path) -> None:
    """`[llm] backend = "openai"`: the same kernel, agents and syscalls, the model on a server."""
    from aios.config import Config, LLMConfig
    from kernel import open_kernel
    from memory.store import Store

    config = Config(llm=LLMConfig(backend="openai", openai_url=server_url, temperature=0.0, max_tokens=24))
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(120):
            async with open_kernel(config, store=store) as kernel:
                assert kernel.model_name
                pids = [await kernel.spawn("chat", q, interactive=False) for q in ("Say hi.", "Name a colour.")]
                infos = [await kernel.wait(pid) for pid in pids]
    finally:
        store.close()
    for info in infos:
        assert info["state"] == "exited", info
        assert info["result"]
        assert info["residency"] == "remote" or info["completion_tokens"] > 0


async def test_openai_backend_without_url_is_a_clear_error(tmp_path: Path) -> None:
    from aios.config import Config, LLMConfig
    from aios.errors import UsageError
    from kernel import open_kernel
    from memory.store import Store

    store = Store.open(tmp_path / "aios.db")
    try:
        with pytest.raises(UsageError, match="needs \\[llm\\] openai_url"):
            async with open_kernel(Config(llm=LLMConfig(backend="openai")), store=store):
                pass
    finally:
        store.close()
