"""Structured output: a JSON schema becomes a GBNF grammar that masks logits token by token.

The schema is converted with llama-cpp-python's converter (the same one llama.cpp's server uses). Strings
in the resulting grammar exclude raw control characters, so the output always parses with ``json.loads``.
String lengths are capped (``maxLength`` is filled in where a schema leaves it open) because small models
otherwise loop inside a string until they hit the token limit.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np

from aios.errors import UsageError

__all__ = ["DEFAULT_MAX_STRING", "LlamaGrammarConstraint", "schema_to_gbnf"]

DEFAULT_MAX_STRING = 200
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")], align=True)


def _cap_strings(node: Any, cap: int) -> Any:
    if isinstance(node, dict):
        out = {k: _cap_strings(v, cap) for k, v in node.items()}
        if out.get("type") == "string" and "maxLength" not in out and "enum" not in out and "pattern" not in out:
            out["maxLength"] = cap
        return out
    if isinstance(node, list):
        return [_cap_strings(v, cap) for v in node]
    return node


def schema_to_gbnf(schema: dict[str, Any] | str, *, max_string: int = DEFAULT_MAX_STRING) -> str:
    """Convert a JSON schema to GBNF; raise UsageError naming the problem if it is not a usable schema."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise UsageError(f"invalid JSON schema: not JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise UsageError("invalid JSON schema: expected an object")
    kind = schema.get("type")
    if kind is not None and kind not in ("object", "array", "string", "number", "integer", "boolean", "null"):
        raise UsageError(f"invalid JSON schema: unknown type {kind!r}")
    try:
        return str(json_schema_to_gbnf(json.dumps(_cap_strings(schema, max_string))))
    except Exception as exc:  # the converter raises assorted errors on unsupported constructs
        raise UsageError(f"invalid JSON schema: {type(exc).__name__}: {exc}") from None


class LlamaGrammarConstraint:
    """llama.cpp's grammar sampler applied to a numpy logits vector."""

    def __init__(self, vocab: Any, gbnf: str, n_vocab: int) -> None:
        import llama_cpp as L

        self._L = L
        self._sampler = L.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not self._sampler:
            raise UsageError("the grammar could not be parsed by llama.cpp")
        self._data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._data["id"] = np.arange(n_vocab, dtype=np.int32)
        self._array = L.llama_token_data_array(
            data=self._data.ctypes.data_as(L.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )

    def apply(self, logits: np.ndarray) -> None:
        self._data["logit"] = logits
        self._array.size = logits.size
        self._array.selected = -1
        self._array.sorted = False
        self._L.llama_sampler_apply(self._sampler, ctypes.byref(self._array))
        logits[:] = self._data["logit"]

    def accept(self, token: int) -> None:
        self._L.llama_sampler_accept(self._sampler, token)

    def close(self) -> None:
        if self._sampler:
            self._L.llama_sampler_free(self._sampler)
            self._sampler = None
