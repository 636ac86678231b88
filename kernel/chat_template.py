"""Renders conversations with the model's own chat template (from the GGUF), ChatML if it has none.

The kernel builds every prompt through this one place, shared parts first, so that agents with the same
system prompt share a token prefix the engine can reuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aios.api import ChatMessage

__all__ = ["CHATML", "ChatTemplate"]

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ChatTemplate:
    def __init__(self, template: str | None, *, bos: str = "", eos: str = "") -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.source = template or CHATML
        self._formatter = Jinja2ChatFormatter(template=self.source, eos_token=eos, bos_token=bos)

    def render(self, messages: Sequence[ChatMessage]) -> str:
        plain: list[Any] = [dict(m) for m in messages]  # llama_cpp types each role as its own TypedDict
        return str(self._formatter(messages=plain).prompt)
