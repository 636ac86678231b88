"""A thin, typed layer over llama-cpp-python's low-level API: one model, one context, many sequences.

Only the engine thread touches a ``LlamaRuntime``. Each sequence id has its own KV stream
(``kv_unified=False``): with a unified cache every token attends to every sequence's cells, which made an
8-sequence decode step 2.5x slower here and let batched outputs drift from solo ones.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aios.errors import ModelError
from aios.models import check_gguf
from kernel.backends.base import BatchEntry
from kernel.grammar import LlamaGrammarConstraint

__all__ = ["DecodeError", "LlamaRuntime", "default_threads"]

log = logging.getLogger(__name__)


class DecodeError(RuntimeError):
    pass


def default_threads() -> int:
    """One thread per core available to this process (llama.cpp's own default is half that)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _quiet_logs() -> None:
    """Route llama.cpp's C-level logging to Python logging at DEBUG (it writes to stderr otherwise)."""
    import llama_cpp

    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        log.debug("llama.cpp: %s", text.decode("utf-8", errors="replace").rstrip())

    _LOG_CALLBACK = _callback  # keep a reference: llama.cpp calls it later (segfault otherwise)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


_LOG_CALLBACK: Any = None


class LlamaRuntime:
    def __init__(
        self,
        model_path: Path,
        *,
        n_seq_max: int = 8,
        n_ctx_seq: int = 2048,
        n_batch: int = 512,
        n_threads: int = 2,
        model_name: str = "",
        flash_attn: bool = True,
    ) -> None:
        import llama_cpp as L

        check_gguf(model_path)
        _quiet_logs()
        self._L = L
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self.model:
            raise ModelError(
                f"cannot load model {model_path}", "the file may be corrupt; add another with `aios models add`"
            )
        cparams = L.llama_context_default_params()
        cparams.n_seq_max = n_seq_max
        cparams.n_ctx = n_ctx_seq * n_seq_max
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.kv_unified = False
        cparams.no_perf = True
        # Explicit, not "auto": outputs depend on it, and the engine's parity tests compare against it.
        cparams.flash_attn_type = 1 if flash_attn else 0
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            L.llama_model_free(self.model)
            raise ModelError(f"cannot create a llama.cpp context for {model_path} (n_ctx={cparams.n_ctx})")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.memory = L.llama_get_memory(self.ctx)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_seq_max = n_seq_max
        self.n_ctx_seq = L.llama_n_ctx_seq(self.ctx)
        self.n_batch = n_batch
        self.n_threads = n_threads
        self.eog_ids = frozenset(t for t in range(self.n_vocab) if L.llama_vocab_is_eog(self.vocab, t))
        self.bos_id = L.llama_vocab_bos(self.vocab)
        self._batch = L.llama_batch_init(n_batch, 0, 1)
        self._pieces: dict[int, bytes] = {}
        self.model_path = model_path
        self.model_name = model_name or model_path.stem
        self.metadata = self._read_metadata()

    # -- vocabulary ---------------------------------------------------------------------------------

    def _read_metadata(self) -> dict[str, str]:
        L = self._L
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 16)
        for i in range(L.llama_model_meta_count(self.model)):
            n = L.llama_model_meta_key_by_index(self.model, i, buf, len(buf))
            key = buf.raw[: max(n, 0)].decode("utf-8", errors="replace")
            n = L.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf))
            out[key] = buf.raw[: max(n, 0)].decode("utf-8", errors="replace")
        return out

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        L = self._L
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (L.llama_token * capacity)()
        n = L.llama_tokenize(self.vocab, data, len(data), tokens, capacity, add_special, parse_special)
        if n < 0:
            tokens = (L.llama_token * -n)()
            n = L.llama_tokenize(self.vocab, data, len(data), tokens, -n, add_special, parse_special)
        return list(tokens[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token as it appears in generated text (special tokens render empty)."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = self._L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            cached = self._pieces[token] = buf.raw[:n]
        return cached

    def special_text(self, token: int) -> str:
        buf = ctypes.create_string_buffer(64)
        n = self._L.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", errors="ignore")

    # -- decoding -----------------------------------------------------------------------------------

    def decode(self, entries: Sequence[BatchEntry]) -> None:
        """Run one ``llama_decode`` over ``entries``; logits of entry i are at ``logits(i)`` if requested."""
        if not entries:
            return
        if len(entries) > self.n_batch:
            raise ValueError(f"batch of {len(entries)} exceeds n_batch={self.n_batch}")
        batch = self._batch
        for i, (token, pos, seq, want) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = want
        batch.n_tokens = len(entries)
        rc = self._L.llama_decode(self.ctx, batch)
        if rc != 0:
            raise DecodeError(f"llama_decode failed with code {rc} (1 = no KV slot for the batch)")

    def logits(self, index: int) -> np.ndarray:
        """Logits of batch entry ``index`` from the last decode, as a float32 view (copy before the next decode)."""
        ptr = self._L.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def set_threads(self, n: int) -> None:
        self._L.llama_set_n_threads(self.ctx, n, n)
        self.n_threads = n

    # -- sequences and state ----------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> None:
        self._L.llama_memory_seq_rm(self.memory, seq, p0, p1)

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        self._L.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def seq_pos_max(self, seq: int) -> int:
        return int(self._L.llama_memory_seq_pos_max(self.memory, seq))

    def state_get(self, seq: int) -> np.ndarray:
        size = self._L.llama_state_seq_get_size(self.ctx, seq)
        buf = np.empty(size, dtype=np.uint8)  # np.empty: a ctypes array would zero-fill tens of MB first
        written = self._L.llama_state_seq_get_data(
            self.ctx, buf.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), size, seq
        )
        if written != size:
            raise DecodeError(f"state save of sequence {seq} wrote {written} of {size} bytes")
        return buf

    def state_set(self, seq: int, data: np.ndarray) -> None:
        read = self._L.llama_state_seq_set_data(
            self.ctx, data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), data.size, seq
        )
        if read == 0:
            raise DecodeError(f"state restore into sequence {seq} failed")

    def grammar(self, gbnf: str) -> LlamaGrammarConstraint:
        return LlamaGrammarConstraint(self.vocab, gbnf, self.n_vocab)

    def close(self) -> None:
        L = self._L
        if self._batch is not None:
            L.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            L.llama_model_free(self.model)
            self.model = None
