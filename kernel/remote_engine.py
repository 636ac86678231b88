"""The ``openai`` backend: the engine's surface over any OpenAI-compatible HTTP server.

llama-server, vLLM, Ollama and ``python -m llama_cpp.server`` all stream ``/v1/chat/completions`` and
``/v1/completions`` as server-sent events. The server does the batching and keeps its own caches, so this
engine only decides *admission*: at most ``max_concurrency`` requests are in flight, and when more wait
the same ``Scheduler`` as the local engine orders them (priority classes with aging, or fifo). A running
request is never preempted (its tokens come from another machine); ``suspend(key)`` holds back that key's
queued requests.

Everything runs in the event loop: ``run()`` owns the HTTP client and a task group with one task per
streaming call. Cancelling a request (or leaving its iteration early) closes its HTTP stream. Failures
(connection refused, HTTP errors, malformed events) become an ``LLMServerError`` for that request only.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.abc import TaskStatus

from aios.api import ChatMessage
from aios.errors import AiosError
from kernel.backends.base import FinishReason, GenerationStats, SamplingParams
from kernel.engine import EngineClosed
from kernel.generation import Generation
from kernel.queued_engine import QueuedEngine, QueuedRequest

__all__ = ["Generation", "LLMServerError", "LLMServerUnavailable", "RemoteEngine"]

log = logging.getLogger(__name__)

_HINT = "check that the server is running and [llm] openai_url points at it"


class LLMServerError(AiosError):
    """The OpenAI-compatible server could not be reached or answered with an error."""


class LLMServerUnavailable(LLMServerError):
    """The server is gone or cannot serve now (refused, dropped the stream, 502/503/504): another one may."""


@dataclass(eq=False)
class _Request(QueuedRequest):
    #: More fields for the request body (the engine pool's ``continue_final_message``).
    extra_body: dict[str, Any] | None = None
    scope: anyio.CancelScope | None = None
    pieces: int = 0
    last_at: float | None = None
    finish: FinishReason | None = None
    usage: dict[str, Any] | None = None


class RemoteEngine(QueuedEngine[_Request]):
    _task_name = "aios-remote-engine"
    _what = "the remote LLM engine"

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None = None,
        api_key: str | None = None,
        max_concurrency: int = 4,
        policy: str = "priority",
        aging_s: float = 10.0,
        llama_extensions: bool = True,
        connect_timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        hint: str = _HINT,
    ) -> None:
        """``base_url`` like ``http://127.0.0.1:8080`` (a trailing ``/v1`` is accepted). ``model`` is sent as
        the request's model (asked from ``/v1/models`` when empty). ``llama_extensions`` sends llama.cpp's
        ``repeat_penalty``, ``grammar`` and ``ignore_eos``/``min_tokens`` fields; turn it off for servers that
        reject unknown fields."""
        super().__init__(max_concurrency=max_concurrency, policy=policy, aging_s=aging_s)
        url = base_url.rstrip("/")
        self.base_url = url.removesuffix("/v1")
        self.model = model or None
        self.model_name = model or f"openai@{self.base_url}"
        self.api_key = api_key
        self.llama_extensions = llama_extensions
        #: What its errors tell the user to check.
        self.hint = hint
        self._timeout = httpx.Timeout(None, connect=connect_timeout_s)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._model_probed = model is not None
        #: Streamed chunks received (the local engine counts decode steps).
        self.steps = 0
        #: Keys in the order their requests were sent to the server (the latest 1000).
        self.admissions: collections.deque[Hashable] = collections.deque(maxlen=1000)

    @property
    def max_concurrency(self) -> int:
        return self.scheduler.max_batch

    # -- lifecycle ------------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._started = True
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            async with (
                httpx.AsyncClient(timeout=self._timeout, headers=headers, transport=self._transport) as client,
                anyio.create_task_group() as tg,
            ):
                self._client, self._tg = client, tg
                task_status.started()
                self._dispatch()
                await self._stop.wait()
                tg.cancel_scope.cancel()
        finally:
            self._client = None
            self._stopping(list(self._queued.values()))

    # -- the engine surface ---------------------------------------------------------------------------

    def submit(
        self,
        key: Hashable,
        params: SamplingParams,
        *,
        messages: Sequence[ChatMessage] | None = None,
        prompt: str | None = None,
        priority: str = "normal",
        extra_body: dict[str, Any] | None = None,
    ) -> Generation:
        """Queue a request for context ``key`` (usually a pid): chat ``messages`` or a raw ``prompt``;
        ``extra_body`` adds fields to the request body."""
        rid, msgs, send, receive = self._open(messages, prompt)
        request = _Request(rid, key, msgs, prompt, params, priority, send, extra_body=extra_body)
        return self._enqueue(request, receive)

    # -- admission ------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Send the best waiting requests while fewer than ``max_concurrency`` are in flight."""
        free = self.max_concurrency - len(self._running)
        if not self._can_dispatch() or free <= 0:
            return
        assert self._tg is not None
        now = time.monotonic()
        for candidate in self._candidates(now)[:free]:
            request = self._queued.pop(candidate.id)
            request.admitted = now
            self._running[request.id] = request
            self.admissions.append(request.key)
            self._tg.start_soon(self._stream, request, name=f"llm-request-{request.id}")

    def _cancel_running(self, request: _Request) -> None:
        if request.scope is not None:
            request.scope.cancel()

    # -- one streaming call ---------------------------------------------------------------------------

    async def _stream(self, request: _Request) -> None:
        error: BaseException | None = None
        try:
            with anyio.CancelScope() as scope:
                request.scope = scope
                if request.cancelled:
                    scope.cancel()
                await self._call(request)
        except AiosError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = self._transport_error(exc)
        except Exception as exc:  # a bug here must not take the other requests down
            log.exception("request %d to %s failed", request.id, self.base_url)
            error = LLMServerError(f"LLM request to {self.base_url} failed: {type(exc).__name__}: {exc}")
        finally:
            if error is None and request.finish is None:
                if not request.cancelled:
                    error = EngineClosed("the LLM engine stopped")
                request.finish = "cancelled"
            self._finish(request, reason=request.finish or "error", error=error)

    async def _call(self, request: _Request) -> None:
        assert self._client is not None
        if not self._model_probed:
            await self._probe_model()
        chat = request.messages is not None
        url = f"{self.base_url}/v1/{'chat/completions' if chat else 'completions'}"
        async with self._client.stream("POST", url, json=self._body(request)) as response:
            if response.status_code >= 400:
                await response.aread()
                error = LLMServerUnavailable if response.status_code in (502, 503, 504) else LLMServerError
                raise error(
                    f"LLM server at {url} answered HTTP {response.status_code}: {_error_text(response)}", self.hint
                )
            done = False
            async for data in _sse_data(response):
                if data == "[DONE]":
                    done = True
                    break
                if not self._on_event(request, data, url, chat=chat):
                    return  # nobody is listening any more
        if request.finish is None:
            if not done:
                raise LLMServerUnavailable(
                    f"LLM server at {url} ended the stream without finishing the reply", self.hint
                )
            log.warning(
                "LLM server at %s ended a stream without a finish reason (llama_cpp.server interrupts a "
                "stream when another request arrives: run it with --interrupt_requests false)",
                url,
            )
            request.finish = "stop"

    def _body(self, request: _Request) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if request.messages is not None:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        if self.model:
            body["model"] = self.model
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        if self.llama_extensions:
            # Always sent: llama_cpp.server defaults to 1.1 when the field is missing.
            body["repeat_penalty"] = p.repeat_penalty
            if p.grammar:
                body["grammar"] = p.grammar
            if p.ignore_eos:
                body["ignore_eos"] = True  # llama-server, vLLM
                body["min_tokens"] = p.max_tokens  # llama_cpp.server, vLLM
        if request.extra_body:
            body.update(request.extra_body)
        return body

    def _on_event(self, request: _Request, data: str, url: str, *, chat: bool) -> bool:
        try:
            event = json.loads(data)
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError:
            raise LLMServerError(
                f"LLM server at {url} sent a malformed stream event: {data[:200]!r}", self.hint
            ) from None
        if "error" in event:
            raise LLMServerError(f"LLM server at {url} reported an error: {_message(event['error'])}", self.hint)
        if isinstance(event.get("usage"), dict):
            request.usage = event["usage"]
        for choice in event.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if chat:
                delta = choice.get("delta")
                text = delta.get("content") if isinstance(delta, dict) else None
            else:
                text = choice.get("text")
            if isinstance(text, str) and text:
                self.steps += 1
                now = time.monotonic()
                if request.first_at is None:
                    request.first_at = now
                request.last_at = now
                request.pieces += 1
                try:
                    request.send.send_nowait(text)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    request.cancelled = True
                    request.finish = "cancelled"
                    return False
            reason = choice.get("finish_reason")
            if reason:
                request.finish = "length" if reason == "length" else "stop"
        return True

    async def _probe_model(self) -> None:
        """Ask ``/v1/models`` once for a model name to send (vLLM and Ollama want one)."""
        assert self._client is not None
        self._model_probed = True
        try:
            with anyio.fail_after(10):
                response = await self._client.get(f"{self.base_url}/v1/models")
            models = response.json().get("data") or []
            if response.status_code < 400 and models and isinstance(models[0].get("id"), str):
                self.model = models[0]["id"]
                log.info("LLM server at %s serves %s", self.base_url, self.model)
        except (httpx.HTTPError, TimeoutError, ValueError, AttributeError) as exc:
            log.debug("could not list models at %s: %s", self.base_url, exc)

    def _transport_error(self, exc: httpx.HTTPError) -> LLMServerError:
        """Connection refused, timed out or dropped: the server is unavailable (another one may serve)."""
        url = str(exc.request.url) if _has_request(exc) else self.base_url
        if isinstance(exc, httpx.ConnectError):
            return LLMServerUnavailable(
                f"cannot connect to the LLM server at {url}: {exc or 'connection refused'}", self.hint
            )
        if isinstance(exc, httpx.TimeoutException):
            return LLMServerUnavailable(f"the LLM server at {url} timed out ({type(exc).__name__})", self.hint)
        if isinstance(exc, httpx.TransportError):
            return LLMServerUnavailable(
                f"the connection to the LLM server at {url} failed: {type(exc).__name__}: {exc}", self.hint
            )
        return LLMServerError(
            f"the connection to the LLM server at {url} failed: {type(exc).__name__}: {exc}", self.hint
        )

    # -- delivery -------------------------------------------------------------------------------------

    def _finished(self, request: _Request) -> None:
        if request.usage is not None and request.key in self.context_info:
            tokens = int(request.usage.get("total_tokens") or 0)
            self.context_info[request.key] = {**self.context_info[request.key], "context_tokens": tokens}
        self._dispatch()

    def _stats(self, request: _Request, reason: FinishReason) -> GenerationStats:
        stats = GenerationStats(finish_reason=reason)
        usage = request.usage or {}
        stats.completion_tokens = _int(usage.get("completion_tokens"), request.pieces)
        stats.prompt_tokens = _int(usage.get("prompt_tokens"), 0)
        details = usage.get("prompt_tokens_details")
        cached = _int(details.get("cached_tokens"), 0) if isinstance(details, dict) else 0
        stats.prefill_computed = max(0, stats.prompt_tokens - cached)
        stats.extra["usage_reported"] = 1.0 if request.usage is not None else 0.0
        self._timings(stats, request)
        if request.pieces > 1 and request.first_at is not None and request.last_at is not None:
            stats.mean_tbt_s = (request.last_at - request.first_at) / (request.pieces - 1)
        return stats


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
        elif line.startswith("data:"):
            lines.append(line[5:].removeprefix(" "))
        # comments (":"), "event:", "id:" and "retry:" lines carry nothing we use
    if lines:
        yield "\n".join(lines)


def _error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(payload, dict):
        return _message(payload.get("error", payload.get("detail", payload)))
    return str(payload)[:300]


def _message(error: Any) -> str:
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])[:300]
    return str(error)[:300]


def _int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, int | float) else default


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018  (raises RuntimeError when the error carries no request)
    except RuntimeError:
        return False
    return True
