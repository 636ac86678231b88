"""A deterministic, scripted runtime for unit tests of kernel and scheduling logic.

It honours the whole ``Runtime`` contract (per-sequence KV, copy, state save/restore, batched decode) with
words as tokens, and answers with ``script(messages)``. It is never a substitute for the real engine in
the engine's own tests: those run on the bundled model.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aios.api import ChatMessage
from kernel.backends.base import BatchEntry

__all__ = ["FAKE_TEMPLATE", "FakeBackend", "echo_script"]

Script = Callable[[Sequence[ChatMessage]], str]

FAKE_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)
_EOG = 2
_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_TURN_RE = re.compile(r"<(system|user|assistant)>(.*?)\n", re.S)


def echo_script(messages: Sequence[ChatMessage]) -> str:
    last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    return f"echo: {last}"


class FakeBackend:
    """Scripted runtime. ``token_delay`` sleeps per decode step; ``gate`` holds every decode until set."""

    n_vocab = 8192
    n_batch = 512

    def __init__(
        self,
        script: Script = echo_script,
        *,
        token_delay: float = 0.0,
        gate: threading.Event | None = None,
        model_name: str = "fake-model",
        n_seq_max: int = 8,
        n_ctx_seq: int = 4096,
    ) -> None:
        self.script = script
        self.token_delay = token_delay
        self.gate = gate
        self.model_name = model_name
        self.n_seq_max = n_seq_max
        self.n_ctx_seq = n_ctx_seq
        self.n_threads = 1
        self.eog_ids = frozenset({_EOG})
        self.metadata = {"tokenizer.chat_template": FAKE_TEMPLATE}
        self._vocab: dict[str, int] = {}
        self._words: list[str] = ["<unk>", "<bos>", "<eos>"]
        # The engine thread and token counting in the kernel's thread both grow the vocabulary.
        self._vocab_lock = threading.Lock()
        self._seqs: dict[int, list[int]] = {}
        self._last: list[tuple[int, np.ndarray | None]] = []
        self._wait = threading.Event()
        #: Every decode call's batch, for tests that check batching.
        self.batches: list[list[BatchEntry]] = []
        self.closed = False

    # -- vocabulary ---------------------------------------------------------------------------------

    def _id(self, word: str) -> int:
        found = self._vocab.get(word)
        if found is not None:
            return found
        with self._vocab_lock:
            if word not in self._vocab:
                if len(self._words) >= self.n_vocab:
                    raise RuntimeError("fake vocabulary is full")
                self._vocab[word] = len(self._words)
                self._words.append(word)
            return self._vocab[word]

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        return [self._id(w) for w in _TOKEN_RE.findall(text)]

    def piece(self, token: int) -> bytes:
        return b"" if token < 3 else self._words[token].encode()

    def special_text(self, token: int) -> str:
        return self._words[token]

    # -- decoding -----------------------------------------------------------------------------------

    def _next_token(self, seq: int) -> int:
        text = "".join(self._words[t] for t in self._seqs[seq] if t >= 3)
        head, sep, answered = text.rpartition("<assistant>")
        if not sep:
            return _EOG
        messages: list[ChatMessage] = [{"role": r, "content": c} for r, c in _TURN_RE.findall(head)]
        reply = self.tokenize(self.script(messages))
        done = len(self.tokenize(answered)) if answered else 0
        return reply[done] if done < len(reply) else _EOG

    def decode(self, entries: Sequence[BatchEntry]) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.token_delay:
            self._wait.wait(self.token_delay)
        self.batches.append(list(entries))
        self._last = []
        for token, pos, seq, want in entries:
            tokens = self._seqs.setdefault(seq, [])
            if pos != len(tokens):
                raise RuntimeError(f"fake runtime: seq {seq} got position {pos}, expected {len(tokens)}")
            tokens.append(token)
            if want:
                logits = np.zeros(self.n_vocab, dtype=np.float32)
                logits[self._next_token(seq)] = 30.0
                self._last.append((seq, logits))
            else:
                self._last.append((seq, None))

    def logits(self, index: int) -> np.ndarray:
        logits = self._last[index][1]
        if logits is None:
            raise RuntimeError("no logits were requested for that batch entry")
        return logits

    # -- sequences and state ------------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        tokens = self._seqs.setdefault(seq, [])
        start = 0 if p0 < 0 else p0
        end = len(tokens) if p1 < 0 else p1
        del tokens[start:end]

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        if p0 >= 0 or p1 >= 0:
            raise RuntimeError("seq_cp() is only supported for full KV buffers")  # as llama.cpp, per stream
        self._seqs[dst] = list(self._seqs.get(src, []))

    def seq_pos_max(self, seq: int) -> int:
        return len(self._seqs.get(seq, [])) - 1

    def state_get(self, seq: int) -> np.ndarray:
        return np.frombuffer(json.dumps(self._seqs.get(seq, [])).encode(), dtype=np.uint8).copy()

    def state_set(self, seq: int, data: np.ndarray) -> None:
        self._seqs[seq] = json.loads(data.tobytes().decode())

    def set_threads(self, n: int) -> None:
        self.n_threads = n

    def grammar(self, gbnf: str) -> Any:
        raise NotImplementedError("the fake runtime has no grammar support; grammar tests use the real model")

    def close(self) -> None:
        self.closed = True
