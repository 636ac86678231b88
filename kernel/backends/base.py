"""The LLM backend seam: what the engine needs from a model, whatever runs it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from aios.api import ChatMessage

__all__ = ["FinishReason", "GenerationStats", "LLMBackend", "SamplingParams", "TextSink"]

FinishReason = Literal["stop", "length", "cancelled", "error"]

#: Receives each decoded piece of text; returns False to stop generation (cancellation between tokens).
TextSink = Callable[[str], bool]


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 512
    temperature: float = 0.2
    top_p: float = 0.95
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.1


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class LLMBackend(Protocol):
    """A loaded model. Every method is called from the engine thread only."""

    name: str
    model_name: str

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        """Render messages with the model's chat template, ending with the assistant's turn opener."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def generate(self, prompt: str, params: SamplingParams, sink: TextSink) -> GenerationStats:
        """Generate a continuation of ``prompt``, passing text to ``sink`` as it is decoded (blocking)."""
        ...

    def close(self) -> None: ...
