"""bench/scheduler_big: the scheduler throughput row (bench/scheduler row 1) on a ~1.7B-parameter llama GGUF.

The tiny bundled model is compute-bound on a 2-core CPU, so batching buys it little; this runs the same row
(one request at a time behind a lock vs a bare batched llama.cpp loop vs the aios kernel) on a model ~13x
bigger to show how that scales. The weights are random (bench/make_random_gguf.py, SmolLM2-1.7B-like dims,
Q8_0): the text is garbage, the compute per token is real. Sizes are cut (N 1/4/8, 32 tokens, 3 repeats) so
the run takes ~4 minutes on an idle 2-core machine and ~8 under load (making the 1.7 GiB model the first time
adds ~30 s); AIOS_BENCH_REPEATS=1 for a quick look.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scheduler
from bench._results import write_result
from bench.make_random_gguf import DEFAULT_PATH, make_random_gguf, param_count

N_VALUES = (1, 4, 8)
GEN_TOKENS = 32
REPEATS = int(os.environ.get("AIOS_BENCH_REPEATS", "3"))
DIMS: dict[str, int] = {"hidden": 2048, "layers": 24, "heads": 32, "kv_heads": 32, "ffn": 8192}
SEED = 0


def model_path() -> Path:
    """The random GGUF for DIMS, made on first use under ~/.cache/aios-bench/ (never in the repo)."""
    d = DIMS
    name = f"random-llama-h{d['hidden']}-l{d['layers']}-a{d['heads']}-kv{d['kv_heads']}-f{d['ffn']}-s{SEED}.q8_0.gguf"
    path = DEFAULT_PATH.with_name(name)
    if not path.exists():  # written atomically, so an existing file is complete
        make_random_gguf(path, **DIMS, seed=SEED)
    return path


def main() -> None:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    started = time.perf_counter()
    path = model_path()
    make_s = time.perf_counter() - started
    os.environ["AIOS_BENCH_MODEL"] = str(path)
    scheduler.N_VALUES, scheduler.GEN_TOKENS, scheduler.REPEATS = N_VALUES, GEN_TOKENS, REPEATS
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    m = scheduler.row_throughput()
    wall = time.perf_counter() - started
    metrics: dict[str, Any] = {k: v for k, v in m.items() if k.startswith("kernel_")}
    metrics["row_throughput_wall_s"] = wall
    baseline = {k: v for k, v in m.items() if not k.startswith("kernel_")}
    ratio: dict[str, Any] = {}
    for n in N_VALUES:
        ratio[f"kernel_over_bare_n{n}"] = m[f"kernel_tok_s_n{n}"] / m[f"bare_tok_s_n{n}"]
        ratio[f"kernel_over_sequential_n{n}"] = m[f"kernel_tok_s_n{n}"] / m[f"sequential_tok_s_n{n}"]
    top = max(N_VALUES)
    ttft_p99 = m[f"sequential_ttft_p99_s_n{top}"] / m[f"kernel_ttft_p99_s_n{top}"]
    ratio[f"sequential_over_kernel_ttft_p99_n{top}"] = ttft_p99
    for label in ("bare", "kernel"):  # how batching scales: tok/s at N over tok/s at 1
        ratio[f"{label}_n{top}_over_n1"] = m[f"{label}_tok_s_n{top}"] / m[f"{label}_tok_s_n1"]
    write_result(
        "scheduler_big",
        params={
            "n_values": list(N_VALUES),
            "gen_tokens": GEN_TOKENS,
            "repeats": REPEATS,
            "threads": scheduler.THREADS,
            "model": "random-weight llama GGUF (bench/make_random_gguf.py), SmolLM2-1.7B-like dims",
            "weights": f"random normal std 0.02 (seed {SEED}); output text is garbage",
            "dims": {**DIMS, "head_dim": DIMS["hidden"] // DIMS["heads"], "vocab": 49152, "tied_embeddings": True},
            "parameters": param_count(**DIMS),
            "quantization": "Q8_0 matrices (incl. token_embd), F32 norms",
            "file_gib": round(path.stat().st_size / 2**30, 3),
            "model_make_s": round(make_s, 1),
            "loadavg_1m_before": load_before,
        },
        metrics=metrics,
        baseline=baseline,
        ratio=ratio,
        notes=(
            "Row 1 of bench/scheduler (throughput) only, cut to N 1/4/8 x 32 tokens x 3 repeats so the run takes "
            "~4 min idle, ~8 min under load on the 2-core machine; medians over repeats; tokenizer and chat template "
            "from the bundled SmolLM2. The machine is shared: other processes compete for the 2 cores and llama.cpp's "
            "2 threads slow down several-fold when they do (machine.loadavg_1m is taken at the end and includes this "
            "run's own 2 threads; params.loadavg_1m_before is taken before the row)."
        ),
    )
