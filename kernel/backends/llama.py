"""The real engine: llama-cpp-python over a local GGUF file (the bundled SmolLM2 by default).

This first engine runs one request at a time through llama-cpp-python's streaming completion; the batched
multi-sequence engine replaces ``generate`` without changing the backend seam.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aios.api import ChatMessage
from aios.errors import ModelError
from aios.models import check_gguf
from kernel.backends.base import GenerationStats, SamplingParams, TextSink

__all__ = ["LlamaBackend", "default_threads"]

log = logging.getLogger(__name__)

_CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_threads() -> int:
    """One thread per core available to this process (llama-cpp-python's own default is half that)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LlamaBackend:
    name = "llama"

    def __init__(
        self,
        model_path: Path,
        *,
        model_name: str = "",
        n_ctx: int = 4096,
        n_threads: int = 0,
        n_batch: int = 256,
    ) -> None:
        check_gguf(model_path)
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or default_threads()
        try:
            self._llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_batch=n_batch,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"cannot load model {model_path}: {exc}", "the file may be corrupt; add another with `aios models add`"
            ) from None
        self.model_name = model_name or model_path.stem
        self.model_path = model_path
        self.n_ctx = n_ctx
        template = self._llm.metadata.get("tokenizer.chat_template") or _CHATML
        eos = self._token_text(self._llm.token_eos())
        bos = self._token_text(self._llm.token_bos())
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        log.info("loaded %s (%d threads, n_ctx=%d)", model_path, threads, n_ctx)

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def format_chat(self, messages: Sequence[ChatMessage]) -> str:
        result = self._formatter(messages=[dict(m) for m in messages])
        return str(result.prompt)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(self, prompt: str, params: SamplingParams, sink: TextSink) -> GenerationStats:
        prompt_tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        room = self.n_ctx - len(prompt_tokens)
        if room <= 0:
            raise ValueError(f"prompt of {len(prompt_tokens)} tokens does not fit the {self.n_ctx}-token context")
        stats = GenerationStats(prompt_tokens=len(prompt_tokens))
        kwargs: dict[str, Any] = dict(
            max_tokens=min(params.max_tokens, room),
            temperature=params.temperature,
            top_p=params.top_p,
            repeat_penalty=params.repeat_penalty,
            stop=list(params.stop) or None,
            stream=True,
        )
        if params.seed is not None:
            kwargs["seed"] = params.seed
        # Reusing the previous request's cached prefix changes the floating-point path (one token evaluated
        # alone instead of in the prompt batch), so the same greedy request could give different text.
        self._llm.reset()
        stream = self._llm.create_completion(prompt_tokens, **kwargs)
        try:
            for chunk in stream:
                choice = chunk["choices"][0]  # type: ignore[index]
                text = choice["text"]
                if text:
                    stats.completion_tokens += 1
                    if not sink(text):
                        stats.finish_reason = "cancelled"
                        break
                if choice.get("finish_reason"):
                    stats.finish_reason = "length" if choice["finish_reason"] == "length" else "stop"
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return stats

    def close(self) -> None:
        closer = getattr(self._llm, "close", None)
        if closer is not None:
            closer()
