"""The ``pool`` backend: one engine surface over several OpenAI-compatible servers (llama-server, vLLM, SGLang).

Each server is a ``RemoteEngine`` (it streams and parses); the pool owns admission and routing. Requests wait
in one queue ordered by the same ``Scheduler`` as the other engines (priority classes with aging, or fifo)
and are sent, best first, while some live server has a free slot (``max_concurrency`` in flight each):

- **load**: among the live servers with a free slot, the one with the fewest requests in flight;
- **affinity**: a process's requests stay on the server that served it last, and a new process whose prompt
  starts like one a server has seen (the shared system prompt and tool catalog, in 256-character blocks)
  goes there, so the server's prompt cache is reused; affinity yields to load when that server has more
  than ``affinity_slack`` requests in flight beyond the least loaded one (the pool never leaves a request
  waiting while some server has room).

**Failures.** A request whose server is unavailable (refused, dropped the connection, ended the stream
unfinished, 502/503/504) marks that server dead and goes back to the head of the queue, for another server,
up to ``max_attempts`` servers. Before its first token it is simply sent again. After some tokens it is
*continued*, not restarted: the caller has those tokens already, so the next server gets the prompt with
the text so far appended — a raw prompt extended by it, a chat with it as a final assistant message and
``continue_final_message`` (llama-server, vLLM and SGLang continue that message) — and ``max_tokens``
less what was generated. A grammar cannot be resumed in the middle of its output, so a request with a
grammar is delivered whole when it finishes and restarted cleanly on failure. Other errors (a 4xx, an
error event) are the request's own and go to its caller.

**Health.** A dead server is probed (``GET health_path``) after ``backoff_initial_s``, then at doubling
intervals up to ``backoff_max_s``; the first 2xx brings it back. A live server is probed every
``health_interval_s``, so one that died while idle is noticed before a request is sent to it. While no
server is up, requests wait up to ``wait_for_server_s``, then fail.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from anyio.abc import TaskStatus

from aios.api import ChatMessage
from aios.config import LLMServer, PoolConfig
from aios.errors import AiosError, ConfigError
from kernel.backends.base import FinishReason, GenerationStats, SamplingParams
from kernel.engine import EngineClosed
from kernel.generation import Generation
from kernel.queued_engine import QueuedEngine, QueuedRequest
from kernel.remote_engine import LLMServerError, LLMServerUnavailable, RemoteEngine

__all__ = ["EnginePool", "PoolServer"]

log = logging.getLogger(__name__)

#: Characters per prefix block: prompts are compared by the chained hashes of their full blocks.
BLOCK_CHARS = 256
#: Prefix blocks remembered per server (least recently used forgotten first).
MAX_BLOCKS = 8192


@dataclass(eq=False)
class PoolServer:
    """One server of the pool, as routing sees it."""

    url: str
    engine: RemoteEngine
    max_concurrency: int
    up: bool = True
    in_flight: int = 0
    served: int = 0
    failures: int = 0
    last_error: str = ""
    backoff_s: float = 0.0
    next_probe: float = 0.0
    blocks: collections.OrderedDict[bytes, None] = field(default_factory=collections.OrderedDict)

    @property
    def free(self) -> bool:
        return self.up and self.in_flight < self.max_concurrency

    def remember(self, hashes: Sequence[bytes]) -> None:
        for h in hashes:
            self.blocks[h] = None
            self.blocks.move_to_end(h)
        while len(self.blocks) > MAX_BLOCKS:
            self.blocks.popitem(last=False)

    def match(self, hashes: Sequence[bytes]) -> int:
        """How many leading prefix blocks of a prompt this server has seen."""
        n = 0
        for h in hashes:
            if h not in self.blocks:
                break
            n += 1
        return n

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "state": "up" if self.up else "down",
            "in_flight": self.in_flight,
            "max_concurrency": self.max_concurrency,
            "served": self.served,
            "failures": self.failures,
            "last_error": self.last_error,
        }


@dataclass(eq=False)
class _Request(QueuedRequest):
    #: The prompt's prefix blocks (``prefix_blocks``), for affinity routing.
    blocks: list[bytes] = field(default_factory=list)
    #: Generated so far, across servers (a grammar request's pieces are held here until it finishes).
    text: list[str] = field(default_factory=list)
    delivered: int = 0
    attempts: int = 0
    servers: list[str] = field(default_factory=list)
    current: Generation | None = None
    completion_tokens: int = 0
    prefill_computed: int = 0
    last_stats: GenerationStats | None = None

    @property
    def buffered(self) -> bool:
        return self.params.grammar is not None


class EnginePool(QueuedEngine[_Request]):
    """The ``LLMEngine`` surface over several OpenAI-compatible servers; see the module's docstring."""

    _task_name = "aios-engine-pool"
    _what = "the engine pool"

    def __init__(
        self,
        servers: Sequence[LLMServer],
        *,
        pool: PoolConfig | None = None,
        api_key: str | None = None,
        policy: str = "priority",
        aging_s: float = 10.0,
        model_name: str | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not servers:
            raise ConfigError(
                "the engine pool needs at least one server", "add [[llm.servers]] url = ... to config.toml"
            )
        urls = [s.url.rstrip("/").removesuffix("/v1") for s in servers]
        if len(set(urls)) != len(urls):
            dup = next(u for u in urls if urls.count(u) > 1)
            raise ConfigError(f"the engine pool lists the server {dup} twice", "keep one [[llm.servers]] per URL")
        self.config = pool or PoolConfig()
        self.servers = [
            PoolServer(
                url,
                RemoteEngine(
                    url,
                    model=s.model or None,
                    api_key=api_key_for(s) or api_key,
                    max_concurrency=s.max_concurrency,
                    policy=policy,
                    llama_extensions=s.llama_extensions,
                    connect_timeout_s=connect_timeout_s,
                    hint=f"check that {url} runs and answers, and its [[llm.servers]] entry",
                ),
                s.max_concurrency,
            )
            for url, s in zip(urls, servers, strict=True)
        ]
        self.model_name = model_name or f"pool@{len(self.servers)}"
        super().__init__(max_concurrency=sum(s.max_concurrency for s in self.servers), policy=policy, aging_s=aging_s)
        #: The server each live process was last sent to.
        self._affinity: dict[Hashable, PoolServer] = {}
        self._rr = itertools.count()
        self._no_server_since: float | None = None
        #: (key, server url) in the order requests were sent (the latest 1000): for tests and traces.
        self.routes: collections.deque[tuple[Hashable, str]] = collections.deque(maxlen=1000)
        #: Requests sent again to another server after theirs failed.
        self.reroutes = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Streamed chunks received from every server (the local engine counts decode steps)."""
        return sum(s.engine.steps for s in self.servers)

    def server_status(self) -> list[dict[str, Any]]:
        """Each server: url, up/down, requests in flight, served, failures, last error."""
        return [s.describe() for s in self.servers]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._started = True
        try:
            async with (
                httpx.AsyncClient(timeout=self.config.health_timeout_s) as probe_client,
                anyio.create_task_group() as tg,
            ):
                for server in self.servers:
                    await tg.start(server.engine.run)
                    server.next_probe = time.monotonic()  # probe every server at once: skip dead ones early
                self._tg = tg
                tg.start_soon(self._health_loop, probe_client, name="engine-pool-health")
                task_status.started()
                self._dispatch()
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            self._stopping([*self._queued.values(), *self._running.values()])

    # -- the engine surface ---------------------------------------------------------------------------

    def submit(
        self,
        key: Hashable,
        params: SamplingParams,
        *,
        messages: Sequence[ChatMessage] | None = None,
        prompt: str | None = None,
        priority: str = "normal",
    ) -> Generation:
        """Queue a request for context ``key`` (usually a pid): chat ``messages`` or a raw ``prompt``."""
        rid, msgs, send, receive = self._open(messages, prompt)
        blocks = prefix_blocks(msgs if msgs else prompt or "")
        return self._enqueue(_Request(rid, key, msgs, prompt, params, priority, send, blocks=blocks), receive)

    def release(self, key: Hashable) -> None:
        """The owner of ``key`` is gone: cancel its requests and forget it."""
        super().release(key)
        self._affinity.pop(key, None)
        for server in self.servers:
            server.engine.release(key)

    # -- routing --------------------------------------------------------------------------------------

    def route(self, key: Hashable, blocks: Sequence[bytes]) -> PoolServer | None:
        """The server for a request of ``key`` whose prompt has these prefix blocks (None: none has room)."""
        live = [s for s in self.servers if s.up]
        free = [s for s in live if s.free]
        if not free:
            return None
        least = min(s.in_flight for s in live)
        matches = {id(s): s.match(blocks) for s in free}
        preferred = self._affinity.get(key)
        if preferred is None or not preferred.up:
            best = max(free, key=lambda s: matches[id(s)])
            preferred = best if matches[id(best)] > 0 else None
        if preferred is not None and preferred.free and preferred.in_flight - least <= self.config.affinity_slack:
            return preferred
        turn = next(self._rr)
        n = len(self.servers)
        return min(
            free,
            key=lambda s: (s.in_flight, -matches[id(s)], (self.servers.index(s) - turn) % n),
        )

    def _dispatch(self) -> None:
        """Send the best waiting requests while some live server has a free slot."""
        if not self._can_dispatch():
            return
        assert self._tg is not None
        now = time.monotonic()
        for candidate in self._candidates(now):
            request = self._queued[candidate.id]
            server = self.route(request.key, request.blocks)
            if server is None:
                break
            del self._queued[request.id]
            if request.admitted is None:
                request.admitted = now
            self._running[request.id] = request
            server.in_flight += 1
            self._affinity[request.key] = server
            server.remember(request.blocks)
            self.routes.append((request.key, server.url))
            self._publish(request.key, server=server.url)
            self._tg.start_soon(self._attempt, request, server, name=f"llm-pool-request-{request.id}")

    def _cancel_running(self, request: _Request) -> None:
        if request.current is not None:
            request.current.cancel()

    # -- one attempt on one server --------------------------------------------------------------------

    async def _attempt(self, request: _Request, server: PoolServer) -> None:
        request.attempts += 1
        request.servers.append(server.url)
        so_far = "".join(request.text) if not request.buffered else ""
        params = request.params
        messages, prompt, extra = request.messages, request.prompt, None
        if so_far:  # continue where the failed server stopped
            params = _replace_max_tokens(params, max(1, params.max_tokens - request.completion_tokens))
            if messages is not None:
                messages = [*messages, {"role": "assistant", "content": so_far}]
                extra = {"continue_final_message": True, "add_generation_prompt": False}
            else:
                prompt = (prompt or "") + so_far
        elif request.buffered:
            request.text.clear()
            request.completion_tokens = 0
        error: BaseException | None = None
        retry = False
        pieces = 0
        try:
            generation = server.engine.submit(
                request.key, params, messages=messages, prompt=prompt, priority=request.priority, extra_body=extra
            )
            request.current = generation
            if request.cancelled:
                generation.cancel()
            async for piece in generation:
                pieces += 1
                request.text.append(piece)
                if request.first_at is None and not request.buffered:
                    request.first_at = time.monotonic()
                if not request.buffered and not self._deliver(request, piece):
                    generation.cancel()
            stats = generation.stats
            assert stats is not None
            request.last_stats = stats
            request.completion_tokens += stats.completion_tokens
            request.prefill_computed += stats.prefill_computed
        except LLMServerUnavailable as exc:
            self._mark_down(server, str(exc))
            request.completion_tokens += pieces
            retry = not request.cancelled and request.attempts < self.config.max_attempts
            if not retry:
                tried = ", ".join(request.servers)
                error = LLMServerUnavailable(
                    f"no server of the engine pool could finish the request (tried {tried}): {exc}",
                    "check that the servers in [[llm.servers]] run (their logs say why one stopped)",
                )
        except (LLMServerError, EngineClosed) as exc:
            error = exc
        except Exception as exc:  # a bug here must not take the other requests down
            log.exception("pool request %d on %s failed", request.id, server.url)
            error = AiosError(f"LLM request to {server.url} failed: {type(exc).__name__}: {exc}")
        finally:
            request.current = None
            server.in_flight -= 1
        # (Cancelled while the pool stops: the request stays in _running and ``run`` finishes it.)
        self._running.pop(request.id, None)
        if retry:
            self.reroutes += 1
            log.warning("request %d: %s failed, sending it to another server", request.id, server.url)
            self._queued[request.id] = request
        elif error is not None:
            self._finish(request, error=error)
        else:
            server.served += 1
            if request.buffered:
                for piece in request.text:
                    if request.first_at is None:
                        request.first_at = time.monotonic()
                    if not self._deliver(request, piece):
                        break
            reason = request.last_stats.finish_reason if request.last_stats is not None else "stop"
            self._finish(request, reason="cancelled" if request.cancelled else reason)
        self._dispatch()

    def _deliver(self, request: _Request, piece: str) -> bool:
        try:
            request.send.send_nowait(piece)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            request.cancelled = True
            return False
        request.delivered += 1
        return True

    # -- health ---------------------------------------------------------------------------------------

    def _mark_down(self, server: PoolServer, reason: str) -> None:
        server.failures += 1
        server.last_error = reason
        if not server.up:
            return
        server.up = False
        server.backoff_s = self.config.backoff_initial_s
        server.next_probe = time.monotonic() + server.backoff_s
        for key in [k for k, s in self._affinity.items() if s is server]:
            del self._affinity[key]
        server.blocks.clear()  # a restarted server has an empty cache
        log.warning("LLM server %s is down: %s", server.url, reason)

    def _mark_up(self, server: PoolServer) -> None:
        if server.up:
            return
        server.up = True
        server.backoff_s = 0.0
        log.info("LLM server %s is back", server.url)
        self._dispatch()

    async def _health_loop(self, client: httpx.AsyncClient) -> None:
        tick = min(0.1, self.config.backoff_initial_s, self.config.health_interval_s)
        probing: set[int] = set()
        async with anyio.create_task_group() as tg:
            while True:
                now = time.monotonic()
                for server in self.servers:
                    if id(server) not in probing and now >= server.next_probe:
                        probing.add(id(server))
                        tg.start_soon(self._probe, client, server, probing)
                self._expire_waiting(now)
                await anyio.sleep(tick)

    async def _probe(self, client: httpx.AsyncClient, server: PoolServer, probing: set[int]) -> None:
        try:
            ok, reason = False, ""
            try:
                with anyio.fail_after(self.config.health_timeout_s):
                    key = server.engine.api_key
                    headers = {"Authorization": f"Bearer {key}"} if key else None
                    response = await client.get(server.url + self.config.health_path, headers=headers)
                ok = response.status_code < 300
                reason = f"health probe answered HTTP {response.status_code}"
            except (httpx.HTTPError, TimeoutError) as exc:
                reason = f"health probe failed: {type(exc).__name__}: {exc}"
            now = time.monotonic()
            if ok:
                self._mark_up(server)
                server.next_probe = now + self.config.health_interval_s
            elif server.up:
                self._mark_down(server, reason)
            else:
                server.last_error = reason
                server.backoff_s = min(self.config.backoff_max_s, max(server.backoff_s, 1e-3) * 2)
                server.next_probe = now + server.backoff_s
        finally:
            probing.discard(id(server))

    def _expire_waiting(self, now: float) -> None:
        """While no server is up, fail requests that have waited ``wait_for_server_s`` for one."""
        if any(s.up for s in self.servers):
            self._no_server_since = None
            return
        if self._no_server_since is None:
            self._no_server_since = now
        waited_since = self._no_server_since
        for request in list(self._queued.values()):
            if now - max(request.arrived, waited_since) >= self.config.wait_for_server_s:
                errors = "; ".join(f"{s.url}: {s.last_error}" for s in self.servers)
                self._finish(
                    request,
                    error=LLMServerUnavailable(
                        f"no server of the engine pool is up ({errors})", "start one, or check [[llm.servers]]"
                    ),
                )

    # -- delivery -------------------------------------------------------------------------------------

    def _stats(self, request: _Request, reason: FinishReason) -> GenerationStats:
        last = request.last_stats or GenerationStats()
        stats = GenerationStats(
            prompt_tokens=last.prompt_tokens,
            completion_tokens=request.completion_tokens,
            finish_reason=reason,
            prefill_computed=request.prefill_computed,
            mean_tbt_s=last.mean_tbt_s,
        )
        stats.extra = {**last.extra, "attempts": float(request.attempts)}
        return self._timings(stats, request)


def api_key_for(server: LLMServer) -> str | None:
    """The server's own API key, from the environment variable it names (None: use the pool's)."""
    return (os.environ.get(server.api_key_env) or None) if server.api_key_env else None


def prefix_blocks(prompt: Sequence[ChatMessage] | str) -> list[bytes]:
    """Chained hashes of the prompt's full ``BLOCK_CHARS`` blocks: equal lists mean equal prefixes."""
    if isinstance(prompt, str):
        text = prompt
    else:
        text = "".join(f"\x1e{m['role']}\x1f{m['content'] or ''}" for m in prompt)
    hashes: list[bytes] = []
    previous = b""
    for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
        previous = hashlib.blake2b(previous + text[start : start + BLOCK_CHARS].encode(), digest_size=12).digest()
        hashes.append(previous)
    return hashes


def _replace_max_tokens(params: SamplingParams, max_tokens: int) -> SamplingParams:
    return dataclasses.replace(params, max_tokens=max_tokens)
