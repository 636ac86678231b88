"""Baseline of the walking-skeleton engine (one request at a time) on the bundled model.

Measures, through the kernel and its syscalls: one agent alone (TTFT, decode tok/s), then N agents submitted
together (p50/p99 TTFT, aggregate tok/s). The batched engine is judged against these numbers. Each figure
is the median of REPEATS runs; the machine is shared and noisy.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anyio

from bench._results import median, percentile, write_result

AGENTS = 4
REPEATS = 3
MAX_TOKENS = 48
PROMPT = "Write a short paragraph about operating systems."


async def _round(kernel, n: int) -> tuple[list[float], float, int]:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    pids = [await kernel.spawn("chat", f"{PROMPT} ({i})", interactive=False) for i in range(n)]
    infos = [await kernel.wait(pid) for pid in pids]
    wall = time.monotonic() - start
    return [i["ttft_s"] for i in infos], wall, sum(i["completion_tokens"] for i in infos)


async def _measure() -> dict[str, list[float]]:
    from aios.config import Config, LLMConfig
    from kernel import load_runtime, open_kernel
    from memory.store import Store

    config = Config(llm=LLMConfig(max_tokens=MAX_TOKENS, temperature=0.0, n_ctx=2048))
    backend = load_runtime(config)
    figures: dict[str, list[float]] = {k: [] for k in ("solo_ttft", "solo_tps", "multi_p50", "multi_p99", "multi_tps")}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "aios.db")
        async with open_kernel(config, runtime=backend, store=store) as kernel:
            await _round(kernel, 1)  # warm-up
            for _ in range(REPEATS):
                ttfts, wall, tokens = await _round(kernel, 1)
                figures["solo_ttft"].append(ttfts[0])
                figures["solo_tps"].append(tokens / wall)
                ttfts, wall, tokens = await _round(kernel, AGENTS)
                figures["multi_p50"].append(percentile(ttfts, 50))
                figures["multi_p99"].append(percentile(ttfts, 99))
                figures["multi_tps"].append(tokens / wall)
        store.close()
    return figures


def main() -> None:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    figures = anyio.run(_measure)
    m = {k: median(v) for k, v in figures.items()}
    write_result(
        "engine_baseline",
        params={
            "agents": AGENTS,
            "repeats": REPEATS,
            "max_tokens": MAX_TOKENS,
            "engine": "serial (one request at a time)",
        },
        metrics={
            "multi_ttft_p50_s": m["multi_p50"],
            "multi_ttft_p99_s": m["multi_p99"],
            "multi_aggregate_tok_s": m["multi_tps"],
        },
        baseline={"solo_ttft_s": m["solo_ttft"], "solo_tok_s": m["solo_tps"]},
        ratio={
            "multi_over_solo_throughput": m["multi_tps"] / m["solo_tps"],
            "multi_p99_ttft_over_solo_ttft": m["multi_p99"] / m["solo_ttft"],
        },
        notes="Serial skeleton engine; medians of repeated runs on a shared 2-core machine.",
    )
