"""A tiny structurally complete GGUF (one F32 tensor): passes `aios models add`'s whole-file check, while
llama.cpp still refuses to load it (a 'llama' with no weights it needs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_gguf(path: Path, *, n: int = 8) -> Path:
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tensor("x", np.ones(n, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
