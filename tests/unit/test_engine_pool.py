"""The engine pool's routing, re-routing and health checks, against tiny OpenAI-compatible servers.

Each fake server is a real HTTP server (Starlette on uvicorn, on a free port, in a thread) that streams
``/v1/chat/completions`` and ``/v1/completions`` as server-sent events, word by word: its reply to any prompt
is ``w0 w1 ... w9``, continued from where a trailing assistant message (``continue_final_message``) or the
prompt's tail left off, as a real server continues text. A server can be told to hold its streams (to keep
requests in flight), to drop the connection after a few words and die (as a killed process does), to answer
with an HTTP error, and be started again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from aios.api import ChatMessage
from aios.config import LLMServer, PoolConfig, dump_toml, parse_config
from aios.errors import ConfigError
from kernel.backends.base import GenerationStats, LLMEngine, SamplingParams
from kernel.engine import EngineClosed
from kernel.engine_pool import BLOCK_CHARS, EnginePool, prefix_blocks
from kernel.remote_engine import LLMServerError, LLMServerUnavailable

pytestmark = pytest.mark.anyio

WORDS = [f"w{i}" for i in range(10)]
FULL = " ".join(WORDS)
PARAMS = SamplingParams(max_tokens=64, temperature=0.0)
FAST = PoolConfig(
    health_interval_s=0.2, health_timeout_s=2.0, backoff_initial_s=0.05, backoff_max_s=0.2, wait_for_server_s=60
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _continue_from(text: str) -> int:
    """How many of the reply's words ``text`` already ends with (0 for a fresh prompt)."""
    tail = text.split()
    for k in range(min(len(tail), len(WORDS)), 0, -1):
        if tail[-k:] == WORDS[:k]:
            return k
    return 0


class FakeServer:
    """An OpenAI-compatible streaming server on a free port, run by uvicorn in a thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bodies: list[dict[str, Any]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.die_after: int | None = None
        self.api_key: str | None = None
        #: Answer 503 to health probes (``/v1/models``), as a server still loading its model does.
        self.loading = False
        self.dead = False
        self.in_stream = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- the app --------------------------------------------------------------------------------------

    def _refused(self, request: Request) -> Response | None:
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"message": "invalid api key"}}, status_code=401)
        return None

    async def _models(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        if self.loading:
            return JSONResponse({"error": {"message": "Loading model"}}, status_code=503)
        return JSONResponse({"object": "list", "data": [{"id": f"fake-{self.name}", "object": "model"}]})

    async def _complete(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = await request.json()
        self.bodies.append(body)
        chat = request.url.path.endswith("chat/completions")
        if chat:
            messages = body["messages"]
            if messages[-1]["content"] == "BAD":
                return JSONResponse({"error": {"message": "the prompt is BAD"}}, status_code=400)
            done = _continue_from(messages[-1]["content"]) if body.get("continue_final_message") else 0
        else:
            done = _continue_from(body["prompt"])
        words = WORDS[done:][: body.get("max_tokens", 64)]
        return StreamingResponse(self._stream(words, chat, first=done == 0), media_type="text/event-stream")

    async def _stream(self, words: list[str], chat: bool, *, first: bool) -> AsyncIterator[str]:
        self.in_stream += 1
        try:
            for i, word in enumerate(words):
                while not self.hold.is_set() and not self.dead:
                    await asyncio.sleep(0.005)
                if self.die_after is not None and i == self.die_after:
                    self.die()
                if self.dead:
                    raise ConnectionAbortedError("killed")  # uvicorn drops the connection mid-body
                text = word if first and i == 0 else " " + word
                choice = {"index": 0, "delta": {"content": text}} if chat else {"index": 0, "text": text}
                yield f"data: {json.dumps({'choices': [choice]})}\n\n"
                await asyncio.sleep(0.002)
            end: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                end["delta"] = {}
            else:
                end["text"] = ""
            usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
            yield f"data: {json.dumps({'choices': [end], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.in_stream -= 1

    # -- process-like control -------------------------------------------------------------------------

    def start(self) -> None:
        self.dead = False
        app = Starlette(
            routes=[
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/completions", self._complete, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical", lifespan="off")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name=f"fake-openai-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert self._thread.is_alive(), f"fake server {self.name} failed to start on port {self.port}"
            assert time.monotonic() < deadline, f"fake server {self.name} did not start in 10 s"
            time.sleep(0.01)

    def die(self) -> None:
        """Stop at once: open streams are cut, new connections refused (the thread ends soon after)."""
        self.die_after = None
        self.dead = True
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True

    def stop(self) -> None:
        self.die()
        self.hold.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), f"fake server {self.name} did not stop"
        self._server = self._thread = None

    def wait_stopped(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)
            assert not self._thread.is_alive(), f"fake server {self.name} did not stop"


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started = [FakeServer("a"), FakeServer("b")]
    for server in started:
        server.start()
    try:
        yield started
    finally:
        for server in started:
            server.stop()


async def _pool(
    servers: list[FakeServer], *, max_concurrency: int = 4, config: PoolConfig = FAST
) -> tuple[EnginePool, Callable[[], Any]]:
    pool = EnginePool(
        [LLMServer(url=s.url, max_concurrency=max_concurrency) for s in servers], pool=config, aging_s=60.0
    )
    pool.start()

    async def close() -> None:
        with anyio.CancelScope(shield=True):
            await pool.aclose()

    return pool, close


@pytest.fixture
async def pool(servers: list[FakeServer]) -> AsyncIterator[EnginePool]:
    engine, close = await _pool(servers)
    try:
        yield engine
    finally:
        await close()


def chat(user: str, system: str = "Be brief.") -> list[ChatMessage]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def answer(pool: EnginePool, key: int, messages: list[ChatMessage], **kw: Any) -> tuple[str, GenerationStats]:
    generation = pool.submit(key, kw.pop("params", PARAMS), messages=messages, **kw)
    text = "".join([piece async for piece in generation])
    assert generation.stats is not None
    return text, generation.stats


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)
    assert condition(), what


def url_of(pool: EnginePool, key: int) -> list[str]:
    return [url for k, url in pool.routes if k == key]


# -- routing --------------------------------------------------------------------------------------------


async def test_each_process_stays_on_one_server_and_processes_spread(
    pool: EnginePool, servers: list[FakeServer]
) -> None:
    with anyio.fail_after(30):
        for _ in range(3):
            for key in (1, 2, 3, 4):
                text, stats = await answer(pool, key, chat(f"question {key}"))
                assert text == FULL
                assert stats.finish_reason == "stop" and stats.completion_tokens == 10
    for key in (1, 2, 3, 4):
        assert len(set(url_of(pool, key))) == 1, f"process {key} moved: {url_of(pool, key)}"
    used = {url_of(pool, key)[0] for key in (1, 2, 3, 4)}
    assert used == {s.url for s in servers}, "new processes should spread over idle servers"
    assert pool.context_info[1]["server"] == url_of(pool, 1)[0] and pool.steps == 12 * 10


async def test_a_shared_prompt_prefix_goes_to_the_server_that_has_it(
    pool: EnginePool, servers: list[FakeServer]
) -> None:
    system = "You are an agent with these tools: " + "fs.read fs.write mem.get mem.put " * 40
    assert len(prefix_blocks(chat("x", system))) >= 4
    with anyio.fail_after(30):
        await answer(pool, 1, chat("first", system))
        home = url_of(pool, 1)[0]
        for key in (2, 3, 4):  # new processes, idle servers: each would go round-robin without the prefix
            await answer(pool, key, chat(f"task {key}", system))
            assert url_of(pool, key) == [home]
        other = "Another system prompt entirely. " * 30
        await answer(pool, 5, chat("x", other))
        await answer(pool, 6, chat("x", other))
    assert url_of(pool, 6) == url_of(pool, 5), "the second prompt's prefix lives where it was first sent"


async def test_load_beats_affinity_beyond_the_slack(servers: list[FakeServer]) -> None:
    system = "Shared system prompt and tool catalog. " * 30
    engine, close = await _pool(servers, config=FAST.model_copy(update={"affinity_slack": 1}))
    try:
        for server in servers:
            server.hold.clear()
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                results: list[str] = []

                async def one(key: int) -> None:
                    results.append((await answer(engine, key, chat(f"task {key}", system)))[0])

                for key in range(1, 7):
                    tg.start_soon(one, key)
                    with anyio.fail_after(10):
                        while len(engine.routes) < key:  # sent one by one: the routing order is known
                            await anyio.sleep(0.01)
                loads = [s["in_flight"] for s in engine.server_status()]
                assert sorted(loads) != [0, 6] and max(loads) - min(loads) <= 2, loads
                for server in servers:
                    server.hold.set()
        assert results == [FULL] * 6
    finally:
        await close()


async def test_requests_wait_for_a_free_slot(servers: list[FakeServer]) -> None:
    engine, close = await _pool(servers, max_concurrency=1)
    try:
        for server in servers:
            server.hold.clear()
        with anyio.fail_after(30):
            generations = [engine.submit(k, PARAMS, messages=chat(f"q{k}")) for k in (1, 2, 3)]
            await wait_for(lambda: sum(s.in_stream for s in servers) == 2, "two requests streaming")
            assert [g.admitted_at is not None for g in generations] == [True, True, False]
            for server in servers:
                server.hold.set()
            texts = ["".join([p async for p in g]) for g in generations]
        assert texts == [FULL] * 3
        assert generations[2].stats is not None and generations[2].stats.queue_wait_s > 0
    finally:
        await close()


async def test_raw_prompt_and_cancel(pool: EnginePool, servers: list[FakeServer]) -> None:
    with anyio.fail_after(30):
        generation = pool.submit(1, PARAMS, prompt="Once upon a time")
        assert "".join([p async for p in generation]) == FULL
        servers[0].hold.clear()
        servers[1].hold.clear()
        generation = pool.submit(2, PARAMS, prompt="Stream me")
        await wait_for(lambda: sum(s.in_stream for s in servers) == 1, "streaming")
        generation.cancel()
        await wait_for(lambda: all(s["in_flight"] == 0 for s in pool.server_status()), "the slot given back")
        assert all(s["state"] == "up" for s in pool.server_status()), "a cancel is not a failure"


# -- failures -------------------------------------------------------------------------------------------


async def test_a_dead_server_is_skipped_then_comes_back(servers: list[FakeServer]) -> None:
    servers[0].stop()  # configured, but refusing connections
    engine, close = await _pool(servers)
    try:
        with anyio.fail_after(30):
            for key in (1, 2, 3):
                text, _ = await answer(engine, key, chat(f"q{key}"))
                assert text == FULL
        status = {s["url"]: s for s in engine.server_status()}
        assert status[servers[0].url]["state"] == "down"
        assert status[servers[0].url]["failures"] >= 1
        assert "connect" in status[servers[0].url]["last_error"].lower()
        assert status[servers[1].url]["served"] == 3
        assert all(url == servers[1].url for _, url in list(engine.routes)[1:])
        servers[0].start()
        await wait_for(lambda: engine.server_status()[0]["state"] == "up", "the restarted server back in the pool")
        with anyio.fail_after(30):
            for key in (4, 5, 6):
                assert (await answer(engine, key, chat(f"q{key}")))[0] == FULL
        assert servers[0].url in url_of(engine, 4) + url_of(engine, 5) + url_of(engine, 6)
    finally:
        await close()


async def test_an_idle_server_that_dies_is_noticed_by_its_health_probe(
    pool: EnginePool, servers: list[FakeServer]
) -> None:
    servers[1].stop()
    await wait_for(lambda: pool.server_status()[1]["state"] == "down", "the probe marks it down")
    assert pool.reroutes == 0
    with anyio.fail_after(30):
        for key in (1, 2):
            assert (await answer(pool, key, chat("q")))[0] == FULL
    assert pool.reroutes == 0, "nothing was sent to the dead server"


@pytest.mark.parametrize("mode", ["chat", "prompt"])
async def test_a_server_killed_mid_stream_is_continued_on_another(
    pool: EnginePool, servers: list[FakeServer], mode: str
) -> None:
    servers[0].die_after = 4  # the first request goes to the first server (both idle, round robin from 0)
    with anyio.fail_after(30):
        if mode == "chat":
            text, stats = await answer(pool, 1, chat("tell me"))
        else:
            generation = pool.submit(1, PARAMS, prompt="tell me: ")
            text = "".join([p async for p in generation])
            assert generation.stats is not None
            stats = generation.stats
    assert text == FULL, "nothing lost, nothing repeated"
    assert stats.extra["attempts"] == 2 and stats.completion_tokens == 10
    assert url_of(pool, 1) == [servers[0].url, servers[1].url]
    assert pool.server_status()[0]["state"] == "down" and pool.reroutes == 1
    resent = servers[1].bodies[-1]
    if mode == "chat":
        assert resent["messages"][-1] == {"role": "assistant", "content": "w0 w1 w2 w3"}
        assert resent["continue_final_message"] is True and resent["add_generation_prompt"] is False
    else:
        assert resent["prompt"] == "tell me: w0 w1 w2 w3"
    assert resent["max_tokens"] == PARAMS.max_tokens - 4


async def test_a_grammar_request_is_restarted_cleanly(pool: EnginePool, servers: list[FakeServer]) -> None:
    servers[0].die_after = 4
    params = SamplingParams(max_tokens=64, temperature=0.0, grammar='root ::= "w" [0-9]')
    with anyio.fail_after(30):
        text, stats = await answer(pool, 1, chat("json please"), params=params)
    assert text == FULL and stats.extra["attempts"] == 2
    resent = servers[1].bodies[-1]
    assert resent["messages"][-1]["role"] == "user" and "continue_final_message" not in resent
    assert resent["max_tokens"] == 64 and resent["grammar"] == params.grammar


async def test_many_agents_go_on_when_one_server_dies_mid_run(pool: EnginePool, servers: list[FakeServer]) -> None:
    """Twelve processes of three turns each; the first server is killed in the middle of the run."""
    answers: dict[int, list[str]] = {}

    async def agent(key: int) -> None:
        for turn in range(3):
            text, _ = await answer(pool, key, chat(f"agent {key} turn {turn}"))
            answers.setdefault(key, []).append(text)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for key in range(1, 13):
                tg.start_soon(agent, key)
            await wait_for(lambda: servers[0].in_stream >= 2, "the first server busy")
            servers[0].die()
    assert answers == {key: [FULL] * 3 for key in range(1, 13)}
    assert pool.server_status()[0]["state"] == "down" and pool.reroutes >= 1
    servers[0].wait_stopped()


async def test_an_unhealthy_server_is_probed_with_growing_backoff_until_it_recovers(
    pool: EnginePool, servers: list[FakeServer]
) -> None:
    servers[0].loading = True
    await wait_for(lambda: pool.server_status()[0]["state"] == "down", "the 503 probe marks it down")
    assert "HTTP 503" in pool.server_status()[0]["last_error"]
    await wait_for(lambda: pool.servers[0].backoff_s == FAST.backoff_max_s, "the backoff doubled up to its cap")
    with anyio.fail_after(30):
        assert (await answer(pool, 1, chat("q")))[0] == FULL
    assert url_of(pool, 1) == [servers[1].url], "nothing is sent to a server that is down"
    servers[0].loading = False
    await wait_for(lambda: pool.server_status()[0]["state"] == "up", "a healthy probe brings it back")
    assert pool.servers[0].backoff_s == 0.0


async def test_servers_with_api_keys_are_probed_and_called_with_them(
    servers: list[FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    for server in servers:
        server.api_key = "s3cret"
    monkeypatch.setenv("FAKE_POOL_KEY", "s3cret")
    keyed = [LLMServer(url=servers[0].url, api_key_env="FAKE_POOL_KEY"), LLMServer(url=servers[1].url)]
    engine = EnginePool(keyed, pool=FAST, aging_s=60.0)
    engine.start()
    try:
        await wait_for(lambda: engine.server_status()[1]["state"] == "down", "the server probed without its key")
        assert "HTTP 401" in engine.server_status()[1]["last_error"]
        with anyio.fail_after(30):
            assert (await answer(engine, 1, chat("q")))[0] == FULL
        assert engine.server_status()[0]["state"] == "up" and engine.server_status()[0]["served"] == 1
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()


async def test_a_bad_request_is_the_callers_error_not_the_servers(pool: EnginePool) -> None:
    with anyio.fail_after(30), pytest.raises(LLMServerError, match="HTTP 400: the prompt is BAD") as caught:
        await answer(pool, 1, chat("BAD"))
    assert not isinstance(caught.value, LLMServerUnavailable)
    assert "[[llm.servers]]" in caught.value.one_line(), "the hint names the pool's config, not [llm] openai_url"
    assert all(s["state"] == "up" for s in pool.server_status()) and pool.reroutes == 0


async def test_with_every_server_down_a_request_fails_after_the_wait(servers: list[FakeServer]) -> None:
    for server in servers:
        server.stop()
    engine, close = await _pool(servers, config=FAST.model_copy(update={"wait_for_server_s": 0.5, "max_attempts": 2}))
    try:
        with anyio.fail_after(30), pytest.raises(LLMServerUnavailable) as caught:
            await answer(engine, 1, chat("anyone?"))
        assert "engine pool" in str(caught.value)
        await wait_for(lambda: all(s["state"] == "down" for s in engine.server_status()), "both marked down")
        with anyio.fail_after(30), pytest.raises(LLMServerUnavailable, match="no server of the engine pool is up"):
            await answer(engine, 2, chat("still nobody?"))
    finally:
        await close()


async def test_pool_close_ends_waiting_and_running_requests(servers: list[FakeServer]) -> None:
    engine, close = await _pool(servers, max_concurrency=1)
    for server in servers:
        server.hold.clear()
    generations = [engine.submit(k, PARAMS, messages=chat("q")) for k in (1, 2, 3)]
    await wait_for(lambda: sum(s.in_stream for s in servers) == 2, "two streaming")
    await close()
    for generation in generations:
        with anyio.fail_after(10), pytest.raises(EngineClosed, match="stopped"):
            [p async for p in generation]
    with pytest.raises(EngineClosed, match="not running"):
        engine.submit(9, PARAMS, messages=chat("late"))


# -- configuration --------------------------------------------------------------------------------------


def test_pool_config_round_trips_and_bad_servers_are_refused() -> None:
    import tomllib

    config = parse_config(
        {
            "llm": {
                "backend": "pool",
                "servers": [{"url": "http://10.0.0.5:8000/v1", "max_concurrency": 16}, {"url": "http://10.0.0.6:8000"}],
                "pool": {"affinity_slack": 3},
            }
        },
        "config.toml",
    )
    assert parse_config(tomllib.loads(dump_toml(config)), "again") == config
    with pytest.raises(ConfigError, match=r"llm\.servers\.0\.url.*http://"):
        parse_config({"llm": {"servers": [{"url": "10.0.0.5:8000"}]}}, "config.toml")
    with pytest.raises(ConfigError, match=r"unknown key 'llm\.servers\.0\.weight' \(valid keys here: url, model"):
        parse_config({"llm": {"servers": [{"url": "http://a", "weight": 2}]}}, "config.toml")
    with pytest.raises(ConfigError, match="twice"):
        EnginePool([LLMServer(url="http://a:1/v1"), LLMServer(url="http://a:1")])
    with pytest.raises(ConfigError, match="at least one server"):
        EnginePool([])


def test_the_kernel_builds_a_pool_from_config() -> None:
    from aios.config import Config
    from aios.errors import UsageError
    from kernel.kernel import _remote_engine, load_runtime

    config = Config()
    config.llm.backend = "pool"
    assert load_runtime(config) is None
    with pytest.raises(UsageError, match=r"needs \[\[llm.servers\]\]"):
        _remote_engine(config)
    config.llm.servers = [LLMServer(url="http://127.0.0.1:9"), LLMServer(url="http://127.0.0.1:10")]
    engine = _remote_engine(config)
    assert isinstance(engine, LLMEngine)
    assert isinstance(engine, EnginePool) and [s.url for s in engine.servers] == [
        "http://127.0.0.1:9",
        "http://127.0.0.1:10",
    ]


def test_prefix_blocks_match_only_whole_equal_prefixes() -> None:
    a = "x" * (BLOCK_CHARS * 3 + 10)
    b = "x" * (BLOCK_CHARS * 2) + "y" * (BLOCK_CHARS + 10)
    assert len(prefix_blocks(a)) == 3 and prefix_blocks(a)[:2] == prefix_blocks(b)[:2]
    assert prefix_blocks(a)[2] != prefix_blocks(b)[2]
    assert prefix_blocks("short") == []
