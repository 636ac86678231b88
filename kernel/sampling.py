"""Per-request sampling over raw logits, and turning sampled tokens into text.

Sampling runs in numpy on the engine thread: repetition penalty from the sequence's own recent tokens
(llama.cpp keeps penalty state in its sampler, not in saved KV state, so a swapped sequence would lose it),
temperature, nucleus (top-p) and a per-request seeded generator; temperature 0 is greedy (argmax).
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from kernel.backends.base import SamplingParams

__all__ = ["PENALTY_WINDOW", "Constraint", "TextStream", "TokenSampler"]

PENALTY_WINDOW = 64
_TOP_CANDIDATES = 256


class Constraint(Protocol):
    """Masks logits to what a grammar allows and follows the accepted tokens."""

    def apply(self, logits: np.ndarray) -> None: ...

    def accept(self, token: int) -> None: ...

    def close(self) -> None: ...


class TokenSampler:
    def __init__(self, params: SamplingParams, *, banned: Sequence[int] = (), constraint: Constraint | None = None):
        self.params = params
        self.rng = np.random.default_rng(params.seed)
        self.banned = np.asarray(list(banned), dtype=np.int64)
        self._banned_set = frozenset(int(t) for t in banned)
        self.constraint = constraint

    def sample(self, logits: np.ndarray, history: Sequence[int]) -> int:
        """Pick the next token. ``logits`` may be a view into llama.cpp's buffer: it is copied first."""
        p = self.params
        if p.temperature <= 0.0 and p.repeat_penalty == 1.0 and self.constraint is None:
            # Greedy, the common case: argmax of the view, no copy; the slow path only if that token is
            # banned or not finite (a NaN is what argmax returns first).
            token = int(np.argmax(logits))
            if math.isfinite(float(logits[token])) and token not in self._banned_set:
                return token
        x = np.array(logits, dtype=np.float32, copy=True)
        if p.repeat_penalty != 1.0 and history:
            recent = np.unique(np.asarray(history[-PENALTY_WINDOW:], dtype=np.int64))
            recent = recent[recent < x.size]
            vals = x[recent]
            x[recent] = np.where(vals > 0, vals / p.repeat_penalty, vals * p.repeat_penalty)
        if self.banned.size:
            x[self.banned] = -np.inf
        if self.constraint is not None:
            self.constraint.apply(x)
        if not np.isfinite(x).any():
            raise RuntimeError("no token is allowed here (the grammar reached a dead end)")
        if p.temperature <= 0.0:
            token = int(np.argmax(x))
        else:
            token = self._nucleus(x / p.temperature, p.top_p)
        if self.constraint is not None:
            self.constraint.accept(token)
        return token

    def _nucleus(self, x: np.ndarray, top_p: float) -> int:
        k = min(_TOP_CANDIDATES, x.size)
        top = np.argpartition(x, -k)[-k:]
        top = top[np.argsort(x[top])[::-1]]
        finite = x[np.isfinite(x)]
        log_z = float(np.logaddexp.reduce(finite))
        probs = np.exp(x[top] - log_z)
        if top_p < 1.0:
            cut = int(np.searchsorted(np.cumsum(probs), top_p)) + 1
            top, probs = top[:cut], probs[:cut]
        probs = probs / probs.sum()
        return int(top[self.rng.choice(len(top), p=probs)])

    def close(self) -> None:
        if self.constraint is not None:
            self.constraint.close()


class TextStream:
    """Bytes of sampled tokens in, text out: UTF-8 safe across token boundaries, stop strings held back
    until they can no longer match, and cut where one matches."""

    def __init__(self, stops: Sequence[str] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._stops = [s for s in stops if s]
        self._held = ""
        self.stopped = False

    def push(self, data: bytes) -> str:
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(data)
        for stop in self._stops:
            index = text.find(stop)
            if index >= 0:
                self.stopped = True
                self._held = ""
                return text[:index]
        keep = self._partial_stop_suffix(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        if self.stopped:
            return ""
        text = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return text

    def _partial_stop_suffix(self, text: str) -> int:
        longest = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
