from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memory import embeddings as E


def test_embed_shapes_norms_and_meaning() -> None:
    vectors = E.embed(
        ["how do I reset my password", "steps to recover a forgotten login credential", "banana bread with walnuts"]
    )
    assert vectors.shape == (3, E.DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # paraphrase closer than an unrelated text


def test_embed_batches_match_single_and_handle_empty() -> None:
    texts = [f"note number {i} about topic {i % 3}" for i in range(11)]  # > one batch of 8
    batched = E.embed(texts)
    single = np.stack([E.embed_one(t) for t in texts])
    assert np.allclose(batched, single, atol=1e-3)
    assert E.embed([]).shape == (0, E.DIM)
    assert E.embed([""]).shape == (1, E.DIM)
    with pytest.raises(TypeError):
        E.embed("not a list")  # type: ignore[arg-type]


def test_chroma_collection_reopens_with_registered_function(tmp_path: Path) -> None:
    client = E.open_chroma(tmp_path / "chroma")
    col = E.get_collection(client, "unit")
    col.upsert(ids=["cat", "dog"], documents=["the kitten purrs on the sofa", "the hound barks at the postman"])
    del client, col
    reopened = E.open_chroma(tmp_path / "chroma")
    col = reopened.get_collection(f"unit-{E.MODEL_NAME}")
    assert isinstance(col.configuration["embedding_function"], E.MiniLMEmbeddingFunction)
    hit = col.query(query_texts=["a small cat"], n_results=1)
    assert hit["ids"] == [["cat"]]


def test_corrupt_model_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memory import embedding_files

    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    real = embedding_files.embedding_files

    def fake_files() -> list[embedding_files.EmbeddingFile]:
        files = real()
        return [
            embedding_files.EmbeddingFile(f.label, f.package, bad, f.expected_sha256) if f.label == "model.onnx" else f
            for f in files
        ]

    monkeypatch.setattr(E, "embedding_files", fake_files)
    with pytest.raises(E.EmbeddingUnavailable, match="sha256"):
        E._Model()
