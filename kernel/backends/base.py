"""The LLM seam: what the engine needs from a loaded model, whatever runs it.

A ``Runtime`` is one model with one multi-sequence context: tokenizer, batched decode, per-sequence KV
operations and state save/restore. ``LlamaRuntime`` is the real one; ``FakeRuntime`` is a scripted double
for unit tests of kernel and scheduling logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["BatchEntry", "FinishReason", "GenerationStats", "LLMEngine", "Runtime", "SamplingParams"]

FinishReason = Literal["stop", "length", "cancelled", "error"]

#: (token, position, seq_id, wants_logits)
BatchEntry = tuple[int, int, int, bool]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.1
    #: GBNF grammar the output must follow (see kernel.grammar.schema_to_gbnf).
    grammar: str | None = None
    #: Generate exactly ``max_tokens`` (end-of-generation tokens banned); for benchmarks.
    ignore_eos: bool = False


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"
    #: Prompt tokens actually computed (the rest came from cached or shared KV).
    prefill_computed: int = 0
    queue_wait_s: float = 0.0
    ttft_s: float | None = None
    mean_tbt_s: float | None = None
    swaps: int = 0
    restores: int = 0
    recomputes: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Runtime(Protocol):
    """A loaded model with a multi-sequence context. Every method is called from the engine thread only."""

    model_name: str
    n_vocab: int
    n_seq_max: int
    n_ctx_seq: int
    n_batch: int
    n_threads: int
    eog_ids: frozenset[int]
    metadata: dict[str, str]

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]: ...

    def piece(self, token: int) -> bytes: ...

    def special_text(self, token: int) -> str: ...

    def decode(self, entries: Sequence[BatchEntry]) -> None: ...

    def logits(self, index: int) -> np.ndarray: ...

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None: ...

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None: ...

    def state_get(self, seq: int) -> np.ndarray: ...

    def state_set(self, seq: int, data: np.ndarray) -> None: ...

    def set_threads(self, n: int) -> None: ...

    def grammar(self, gbnf: str) -> Any:
        """A ``kernel.sampling.Constraint`` for ``gbnf``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LLMEngine(Protocol):
    """What the kernel needs from the shared LLM, whoever serves it: ``kernel.engine.Engine`` (llama.cpp in
    this process, or the fake runtime for tests) and ``kernel.remote_engine.RemoteEngine`` (any
    OpenAI-compatible server). Requests are keyed by process (a pid): one context each."""

    model_name: str
    #: Per key: residency (resident / swapped / dropped / remote), context tokens... for ``ps`` and the TUI.
    context_info: dict[Any, dict[str, Any]]
    #: Whether ``count_tokens`` uses the model's own tokenizer (else it estimates).
    exact_token_count: bool

    def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def submit(
        self,
        key: Any,
        params: SamplingParams,
        *,
        messages: Sequence[Any] | None = None,
        prompt: str | None = None,
        priority: str = "normal",
    ) -> Any:
        """Queue a request; returns an async iterator of text pieces (``kernel.generation.Generation``)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def release(self, key: Any) -> None: ...

    def suspend(self, key: Any) -> None: ...

    def resume(self, key: Any) -> None: ...

    def set_priority(self, key: Any, priority: str) -> None: ...

    def expect_back(self, key: Any, seconds: float) -> None:
        """``key``'s owner waits on a tool expected to take ``seconds``: a hint for keeping its context."""
        ...
