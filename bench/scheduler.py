"""bench/scheduler: the shared engine against one-at-a-time serving and a bare batched loop, priorities,
context switching and shared prefixes, all on the bundled model and all in one run.

Rows (see issue "Shared LLM engine"):
1. N agents x 128 tokens at once: (a) one request at a time behind a global lock (llama-cpp-python's
   high-level API), (b) a bare batched llama.cpp loop (no kernel: the physical ceiling), (c) the aios kernel.
2. 8 background agents saturating the engine, then a high-priority one arrives: its TTFT, priority vs FIFO;
   Jain's fairness among the 8.
3. A context of 512 / 2,000 tokens swapped out and back (RAM, file) vs recomputed, through the engine's own
   swap path; the continuation must be identical.
4. 8 agents with one ~400-token system prompt: prefill computed and time to all first tokens, shared vs not.

Every figure is the median over REPEATS rounds (this machine is shared and noisy).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

from bench._results import median, percentile, write_result

N_VALUES = (1, 2, 4, 8, 16)
GEN_TOKENS = 128
REPEATS = int(os.environ.get("AIOS_BENCH_REPEATS", "3"))
THREADS = 2
SYSTEM = "You are a helpful assistant."
TOPICS = [
    "rivers",
    "stars",
    "bread",
    "trains",
    "music",
    "forests",
    "oceans",
    "clocks",
    "bridges",
    "bees",
    "volcanoes",
    "paper",
    "salt",
    "wind",
    "glass",
    "maps",
]


def _messages(i: int, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": f"Write about {TOPICS[i % 16]}."}]


def _model() -> Path:
    """The bundled model, or the GGUF named by AIOS_BENCH_MODEL (bench/scheduler_big uses that)."""
    from aios.models import bundled_model_path

    override = os.environ.get("AIOS_BENCH_MODEL")
    path = Path(override) if override else bundled_model_path()
    assert path is not None
    return path


# -- (a) one request at a time ------------------------------------------------------------------------


class Sequential:
    def __init__(self) -> None:
        from llama_cpp import Llama

        from kernel.chat_template import ChatTemplate

        self.llm = Llama(
            str(_model()), n_ctx=512, n_threads=THREADS, n_threads_batch=THREADS, flash_attn=True, verbose=False
        )
        self.template = ChatTemplate(self.llm.metadata.get("tokenizer.chat_template"))
        self.lock = threading.Lock()
        self.ban = {0: -1e9, 2: -1e9, 4: -1e9}

    def run(self, n: int) -> tuple[float, list[float]]:
        ttft: list[float] = [0.0] * n
        t0 = time.perf_counter()

        def one(i: int) -> None:
            with self.lock:
                prompt = self.template.render(_messages(i))  # type: ignore[arg-type]
                stream = self.llm.create_completion(
                    prompt, max_tokens=GEN_TOKENS, temperature=0.0, repeat_penalty=1.0, logit_bias=self.ban, stream=True
                )
                for k, _ in enumerate(stream):
                    if k == 0:
                        ttft[i] = time.perf_counter() - t0

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        return n * GEN_TOKENS / wall, ttft


# -- (b) bare batched loop --------------------------------------------------------------------------------


class Bare:
    def __init__(self) -> None:
        from kernel.backends.llama_runtime import LlamaRuntime
        from kernel.chat_template import ChatTemplate

        self.rt = LlamaRuntime(_model(), n_seq_max=16, n_ctx_seq=512, n_batch=512, n_threads=THREADS)
        self.template = ChatTemplate(self.rt.metadata.get("tokenizer.chat_template"))
        self.eog = np.array(sorted(self.rt.eog_ids))

    def _argmax(self, index: int) -> int:
        logits = np.array(self.rt.logits(index))
        logits[self.eog] = -np.inf
        return int(np.argmax(logits))

    def run(self, n: int) -> tuple[float, list[float]]:
        rt = self.rt
        for s in range(16):
            rt.seq_rm(s)
        prompts = [rt.tokenize(self.template.render(_messages(i))) for i in range(n)]  # type: ignore[arg-type]
        t0 = time.perf_counter()
        entries = [(tok, pos, s, pos == len(p) - 1) for s, p in enumerate(prompts) for pos, tok in enumerate(p)]
        last: list[int] = []
        for start in range(0, len(entries), rt.n_batch):
            chunk = entries[start : start + rt.n_batch]
            rt.decode(chunk)
            last += [i for i, e in enumerate(chunk) if e[3]]
            pending = [self._argmax(i) for i in [i for i, e in enumerate(chunk) if e[3]]]
            if start == 0:
                firsts = pending
            else:
                firsts += pending
        now = time.perf_counter() - t0
        ttft = [now] * n
        pos = [len(p) for p in prompts]
        tokens = firsts
        for _ in range(GEN_TOKENS - 1):
            rt.decode([(tokens[s], pos[s], s, True) for s in range(n)])
            tokens = [self._argmax(s) for s in range(n)]
            pos = [p + 1 for p in pos]
        wall = time.perf_counter() - t0
        return n * GEN_TOKENS / wall, ttft


# -- (c) the kernel -----------------------------------------------------------------------------------------


def _bench_plugins(first_tokens: dict[int, float], finished: dict[int, float]) -> Any:
    from aios import Agent, Manifest, hookimpl
    from aios.plugin_manager import PluginManager

    class Writer(Agent):
        manifest = Manifest(name="bench-writer", priority="background")

        async def run(self, ctx, goal):  # type: ignore[no-untyped-def]
            i, tokens = (int(x) for x in goal.split(":"))
            async for _ in ctx.llm.chat(_messages(i), max_tokens=tokens, temperature=0.0, ignore_eos=True):
                first_tokens.setdefault(ctx.pid, time.perf_counter())
            finished[ctx.pid] = time.perf_counter()

    class Plugin:
        @hookimpl
        def register_agents(self):  # type: ignore[no-untyped-def]
            return [Writer]

    manager = PluginManager(load_entry_points=False)
    manager.register(Plugin(), name="bench")
    return manager


async def _kernel_rounds(config: Any, rounds: list[int]) -> list[tuple[float, list[float]]]:
    from kernel import open_kernel
    from memory.store import Store

    first: dict[int, float] = {}
    done: dict[int, float] = {}
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "aios.db")
        async with open_kernel(config, store=store, plugins=_bench_plugins(first, done)) as kernel:
            for n in rounds:
                t0 = time.perf_counter()
                pids = [await kernel.spawn("bench-writer", f"{i}:{GEN_TOKENS}", priority="normal") for i in range(n)]
                for pid in pids:
                    await kernel.wait(pid)
                wall = time.perf_counter() - t0
                out.append((n * GEN_TOKENS / wall, [first[p] - t0 for p in pids]))
        store.close()
    return out


def _config(**llm: Any) -> Any:
    from aios.config import Config, KernelConfig, LLMConfig

    base = {"n_ctx": 512, "n_seq_max": 16, "max_batch": 16, "n_threads": THREADS, "temperature": 0.0}
    if os.environ.get("AIOS_BENCH_MODEL"):
        from aios.models import ModelRegistry

        base["model"] = ModelRegistry().add(_model(), name="bench-model").name
    return Config(llm=LLMConfig(**{**base, **llm}), kernel=KernelConfig(agent_token_budget=0))


def _variant(key: str, n_values: list[int]) -> list[tuple[float, list[float]]]:
    """One round of variant ``key`` over ``n_values``, in this (fresh) process."""
    if key == "c":
        return anyio.run(_kernel_rounds, _config(), n_values)
    runner = Sequential() if key == "a" else Bare()
    runner.run(1)  # warm-up, as the kernel's engine is warm after loading
    return [runner.run(n) for n in n_values]


def _child(name: str, settings: dict[str, Any], args: tuple[Any, ...]) -> Any:
    globals().update(settings)
    return globals()[name](*args)


def isolated(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh process. llama.cpp's OpenMP thread team stays attached to the thread
    that decoded, and a second model decoding from another thread of the same process ran ~40% slower
    here; every variant and row gets a process of its own, as a real aios kernel has."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    settings = {"N_VALUES": N_VALUES, "GEN_TOKENS": GEN_TOKENS, "REPEATS": REPEATS}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_child, fn.__name__, settings, args).result()


def row_throughput() -> dict[str, Any]:
    figures: dict[str, dict[int, list[tuple[float, list[float]]]]] = {k: {n: [] for n in N_VALUES} for k in "abc"}
    for _ in range(REPEATS):
        for key in "abc":  # interleaved, so drifting load hits every variant alike
            kernel_n = [1, *N_VALUES] if key == "c" else list(N_VALUES)  # the kernel's first round warms up
            results = isolated(_variant, key, kernel_n)[-len(N_VALUES) :]
            for n, result in zip(N_VALUES, results, strict=True):
                figures[key][n].append(result)
    table: dict[str, Any] = {}
    for key, label in (("a", "sequential"), ("b", "bare"), ("c", "kernel")):
        for n in N_VALUES:
            runs = figures[key][n]
            table[f"{label}_tok_s_n{n}"] = median([r[0] for r in runs])
            table[f"{label}_ttft_p50_s_n{n}"] = median([percentile(r[1], 50) for r in runs])
            table[f"{label}_ttft_p99_s_n{n}"] = median([percentile(r[1], 99) for r in runs])
    return table


# -- 2. priority ---------------------------------------------------------------------------------------------


async def _priority_round(policy: str, arrivals: int) -> tuple[list[float], list[float]]:
    from aios import Agent, Manifest, hookimpl
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel
    from memory.store import Store

    first: dict[int, float] = {}
    done: dict[int, float] = {}
    manager: PluginManager = _bench_plugins(first, done)

    class Urgent(Agent):
        manifest = Manifest(
            name="bench-urgent", priority="high", capabilities=__import__("aios").Capabilities(max_priority="realtime")
        )

        async def run(self, ctx, goal):  # type: ignore[no-untyped-def]
            async for _ in ctx.llm.chat(_messages(3), max_tokens=8, temperature=0.0, ignore_eos=True):
                first.setdefault(ctx.pid, time.perf_counter())

    class Plugin:
        @hookimpl
        def register_agents(self):  # type: ignore[no-untyped-def]
            return [Urgent]

    manager.register(Plugin(), name="bench-urgent")
    ttfts: list[float] = []
    fairness: list[float] = []
    config = _config(n_seq_max=8, max_batch=8, policy=policy)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "aios.db")
        async with open_kernel(config, store=store, plugins=manager) as kernel:
            for _ in range(arrivals):
                start = time.perf_counter()
                crowd = [await kernel.spawn("bench-writer", f"{i}:{GEN_TOKENS}") for i in range(8)]
                while len([p for p in crowd if p in first]) < 8:
                    await anyio.sleep(0.005)
                await anyio.sleep(0.3)  # all 8 are decoding
                t = time.perf_counter()
                urgent = await kernel.spawn("bench-urgent", "now")
                await kernel.wait(urgent)
                ttfts.append(first[urgent] - t)
                for pid in crowd:
                    await kernel.wait(pid)
                rates = np.array([GEN_TOKENS / (done[p] - start) for p in crowd])
                fairness.append(float(rates.sum() ** 2 / (len(rates) * (rates**2).sum())))
        store.close()
    return ttfts, fairness


def row_priority() -> dict[str, Any]:
    arrivals = max(3, REPEATS * 2)
    prio, fairness = anyio.run(_priority_round, "priority", arrivals)
    fifo, _ = anyio.run(_priority_round, "fifo", arrivals)
    return {
        "priority_ttft_p50_s": median(prio),
        "priority_ttft_p99_s": percentile(prio, 99),
        "fifo_ttft_p50_s": median(fifo),
        "fifo_ttft_p99_s": percentile(fifo, 99),
        "jain_fairness_n8": median(fairness),
    }


# -- 3. context switch -------------------------------------------------------------------------------------------


async def _switch(context_tokens: int) -> dict[str, Any]:
    from kernel.backends.base import SamplingParams
    from kernel.backends.llama_runtime import LlamaRuntime
    from kernel.engine import Engine

    runtime = LlamaRuntime(_model(), n_seq_max=2, n_ctx_seq=2304, n_batch=512, n_threads=THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(runtime, swap_dir=Path(tmp) / "swap")
        engine.start()

        def build(n_words: int) -> str:
            return "Notes: " + " ".join(f"w{i}" for i in range(n_words)) + "\nSummary:"

        def fitting() -> int:  # the most words whose prompt fits the requested token count
            lo, hi = 1, context_tokens
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if len(engine.runtime.tokenize(build(mid))) <= context_tokens else (lo, mid - 1)
            return lo

        prompt = build(await engine.run_in_engine(fitting))
        params = SamplingParams(max_tokens=16, temperature=0.0, repeat_penalty=1.0)

        async def ask() -> tuple[str, Any]:
            generation = engine.submit("ctx", params, prompt=prompt)
            out = "".join([p async for p in generation])
            return out, generation.stats

        # Two references: a full prefill (what a recompute does) and a resident continuation (what a
        # restore resumes), since llama.cpp's logits differ slightly between those two paths.
        prefilled, first = await ask()
        resident, _ = await ask()
        n_tokens = first.prompt_tokens
        figures: dict[str, Any] = {"tokens": n_tokens, "recompute_s": [], "identical": True}
        for mode in ("ram", "file", "drop"):
            for _ in range(REPEATS):

                def out(mode: str = mode) -> float:
                    ctx = engine._contexts["ctx"]
                    t = time.perf_counter()
                    engine._evict(ctx, mode=mode)
                    return time.perf_counter() - t

                def back() -> float:
                    ctx = engine._contexts["ctx"]
                    t = time.perf_counter()
                    engine._admit(ctx)
                    return time.perf_counter() - t

                save_s = await engine.run_in_engine(out)
                restore_s = await engine.run_in_engine(back)
                again, stats = await ask()
                figures["identical"] &= again == (prefilled if mode == "drop" else resident)
                if mode == "drop":
                    figures["recompute_s"].append(stats.ttft_s)
                else:
                    figures.setdefault(f"{mode}_save_s", []).append(save_s)
                    figures.setdefault(f"{mode}_restore_s", []).append(restore_s)
        await engine.aclose()
    return {k: (median(v) if isinstance(v, list) else v) for k, v in figures.items()}


def row_switch() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in (512, 2000):
        figures = anyio.run(_switch, size)
        for key, value in figures.items():
            out[f"switch_{size}_{key}"] = value
    return out


# -- 4. shared prefix ----------------------------------------------------------------------------------------------


async def _prefix(share: bool) -> tuple[float, int]:
    from kernel.backends.base import SamplingParams
    from kernel.backends.llama_runtime import LlamaRuntime
    from kernel.engine import Engine

    system = "You are an agent inside aios. " + " ".join(
        f"Rule {i}: answer precisely, cite the file you used, and keep replies short." for i in range(26)
    )
    runtime = LlamaRuntime(_model(), n_seq_max=8, n_ctx_seq=1024, n_batch=512, n_threads=THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(runtime, swap_dir=Path(tmp), share_prefixes=share)
        engine.start()
        firsts: list[float] = []
        computed: list[int] = []
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            g = engine.submit(i, SamplingParams(max_tokens=2, temperature=0.0), messages=_messages(i, system))  # type: ignore[arg-type]
            async for _ in g:
                firsts.append(time.perf_counter() - t0)
            assert g.stats is not None
            computed.append(g.stats.prefill_computed)

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(one, i)
        await engine.aclose()
    return max(firsts), sum(computed)


def row_prefix() -> dict[str, Any]:
    shared = [anyio.run(_prefix, True) for _ in range(REPEATS)]
    alone = [anyio.run(_prefix, False) for _ in range(REPEATS)]
    return {
        "prefix_shared_all_first_s": median([s[0] for s in shared]),
        "prefix_alone_all_first_s": median([s[0] for s in alone]),
        "prefix_shared_prefill_tokens": median([s[1] for s in shared]),
        "prefix_alone_prefill_tokens": median([s[1] for s in alone]),
    }


def main() -> None:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    m: dict[str, Any] = {}
    for row in (row_throughput, row_priority, row_switch, row_prefix):
        started = time.perf_counter()
        m.update(isolated(row))
        m[f"{row.__name__}_wall_s"] = time.perf_counter() - started
    metrics = {
        k: v for k, v in m.items() if k.startswith(("kernel_", "priority_", "jain", "switch_", "prefix_shared", "row_"))
    }
    baseline = {k: v for k, v in m.items() if k not in metrics}
    ratio = {
        "kernel_over_bare_n8": m["kernel_tok_s_n8"] / m["bare_tok_s_n8"],
        "kernel_over_sequential_n8": m["kernel_tok_s_n8"] / m["sequential_tok_s_n8"],
        "sequential_over_kernel_ttft_p99_n8": m["sequential_ttft_p99_s_n8"] / m["kernel_ttft_p99_s_n8"],
        "fifo_over_priority_ttft_p99": m["fifo_ttft_p99_s"] / m["priority_ttft_p99_s"],
        "recompute_over_restore_2k": m["switch_2000_recompute_s"] / m["switch_2000_ram_restore_s"],
        "recompute_over_restore_file_2k": m["switch_2000_recompute_s"] / m["switch_2000_file_restore_s"],
        "prefix_shared_speedup_n8": m["prefix_alone_all_first_s"] / m["prefix_shared_all_first_s"],
        "prefix_prefill_saving_n8": m["prefix_alone_prefill_tokens"] / max(1, m["prefix_shared_prefill_tokens"]),
        **{f"kernel_over_bare_n{n}": m[f"kernel_tok_s_n{n}"] / m[f"bare_tok_s_n{n}"] for n in N_VALUES},
    }
    write_result(
        "scheduler",
        params={
            "n_values": list(N_VALUES),
            "gen_tokens": GEN_TOKENS,
            "repeats": REPEATS,
            "threads": THREADS,
            "model": "SmolLM2-135M-Instruct Q4_1 (bundled)",
        },
        metrics=metrics,
        baseline=baseline,
        ratio=ratio,
        notes="All rows in one run; medians over repeats on a shared 2-core machine.",
    )
