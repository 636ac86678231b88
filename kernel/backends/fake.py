"""A deterministic, scripted backend for unit tests of kernel logic (never for testing the real engine)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from aios.api import ChatMessage
from kernel.backends.base import GenerationStats, SamplingParams, TextSink

__all__ = ["FakeBackend", "echo_script"]

Script = Callable[[Sequence[ChatMessage]], str]


def echo_script(messages: Sequence[ChatMessage]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"echo: {last}"


class FakeBackend:
    """Replies with ``script(messages)`` split into word tokens, optionally waiting between tokens.

    ``gate`` lets a test hold generation at the first token until it sets the event, to observe
    concurrent states deterministically.
    """

    name = "fake"

    def __init__(
        self,
        script: Script = echo_script,
        *,
        token_delay: float = 0.0,
        gate: threading.Event | None = None,
        model_name: str = "fake-model",
    ) -> None:
        self.script = script
        self.token_delay = token_delay
        self.gate = gate
        self.model_name = model_name
        self.prompts: list[str] = []
        self._pending: dict[str, Sequence[ChatMessage]] = {}
        self.closed = False

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        prompt = "".join(f"<{m['role']}>{m['content']}\n" for m in messages) + "<assistant>"
        self._pending[prompt] = list(messages)
        return prompt

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompt: str, params: SamplingParams, sink: TextSink) -> GenerationStats:
        self.prompts.append(prompt)
        messages = self._pending.pop(prompt, [{"role": "user", "content": prompt}])
        words = self.script(messages).split(" ")
        stats = GenerationStats(prompt_tokens=self.count_tokens(prompt))
        waiter = threading.Event()
        for i, word in enumerate(words):
            if i >= params.max_tokens:
                stats.finish_reason = "length"
                break
            if self.gate is not None:
                self.gate.wait()
            if self.token_delay:
                waiter.wait(self.token_delay)
            stats.completion_tokens += 1
            if not sink(word if i == 0 else " " + word):
                stats.finish_reason = "cancelled"
                break
        return stats

    def close(self) -> None:
        self.closed = True
