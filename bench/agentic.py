"""bench/agentic: agent programs (LLM turn, MCP tool call, repeat) on aios vs native llama-server vs
llama-cpp-python one request at a time, all in one run on the same model file, threads and KV budget.

Rows:
1. Agentic: M programs (``bench/_agentic_workload.py``) all started at once, M = 8 and 32, a KV budget of
   ``SLOTS`` contexts of ``N_CTX`` tokens. (1) aios: each program is an agent process doing ``llm.chat`` and
   ``tool.call`` through the kernel; (2) llama-server built from the pinned sdist
   (``bench/build_llama_server.sh``) with ``SLOTS`` parallel slots, continuous batching, prompt cache, host-RAM
   prompt cache and cache reuse, driven by an async httpx client running the same programs against the same
   MCP server; (3) llama-cpp-python's ``Llama`` with its RAM prompt cache, one request at a time.
2. One-shot: the scheduler bench's prompts, 128 tokens each, N = 1/4/8/16 at once, kernel vs llama-server
   with 16 slots.
3. Oversubscription: 32 one-shot agents over 8 slots vs 8 agents over 8 slots (kernel), and llama-server with 8
   slots: swaps per agent, first-token max, tokens/s.

Sizes are configurable (``AIOS_BENCH_AGENTIC_M``, ``_TURNS``, ``_REPEATS``, ``_SKIP``); the JSON's params say
what ran. Results: bench/results/agentic.json and agentic.svg (completion-time CDF per system).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench._agentic_workload import GEN_TOKENS, ProgramRecord, TurnRecord, run_program, summarize, workload
from bench._results import RESULTS_DIR, median, percentile, write_result

log = logging.getLogger("bench.agentic")

ROOT = Path(__file__).resolve().parent.parent
THREADS = int(os.environ.get("AIOS_BENCH_AGENTIC_THREADS", "2"))
SLOTS = 8
N_CTX = 3072
SEED = 19
SWAP_RAM_MB = 2048
M_VALUES = tuple(int(x) for x in os.environ.get("AIOS_BENCH_AGENTIC_M", "8,32").split(","))
TURNS = tuple(int(x) for x in os.environ.get("AIOS_BENCH_AGENTIC_TURNS", "4,6").split(","))
REPEATS = int(os.environ.get("AIOS_BENCH_AGENTIC_REPEATS", "1"))
#: Comma-separated rows/systems to leave out of a reduced run: sequential, oneshot, m32oneshot.
SKIP = set(filter(None, os.environ.get("AIOS_BENCH_AGENTIC_SKIP", "").split(",")))
#: Programs per second arriving as a Poisson process (the issue's second mode); 0: all start at once.
POISSON = float(os.environ.get("AIOS_BENCH_AGENTIC_POISSON", "0"))
ONESHOT_N = (1, 4, 8, 16)
ONESHOT_TOKENS = 128
TOOL_SERVER = {"command": sys.executable, "args": ["-m", "bench._agentic_tools"], "cwd": str(ROOT)}


def _model() -> Path:
    from aios.models import bundled_model_path

    path = bundled_model_path()
    assert path is not None
    return path


def _version() -> str:
    import re

    match = re.search(r"llama-cpp-python==([0-9.]+)", (ROOT / "pyproject.toml").read_text())
    assert match is not None
    return match.group(1)


def server_binary() -> Path:
    cache = Path(os.environ.get("AIOS_BENCH_CACHE", Path.home() / ".cache" / "aios-bench"))
    return cache / f"llama-server-{_version()}" / "bin" / "llama-server"


def isolated(fn: Any, *args: Any) -> Any:
    """Run ``fn(*args)`` in a fresh process (llama.cpp's thread team stays with the thread that decoded; each
    system gets a process of its own, as it would in real use)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# -- (1) aios -------------------------------------------------------------------------------------------------


def _plugins(m: int, turns: tuple[int, int]) -> Any:
    from aios import Agent, Capabilities, Manifest, hookimpl
    from aios.plugin_manager import PluginManager

    programs = workload(m, seed=SEED, turns=turns, poisson_rate=POISSON)

    class Program(Agent):
        manifest = Manifest(name="bench-agentic", capabilities=Capabilities(tools=("agentic.*",)))

        async def run(self, ctx, goal):  # type: ignore[no-untyped-def]
            index, t0 = goal.split(":")
            state = {"acct": await ctx.call("proc.self")}

            async def llm(messages: list[dict[str, str]]) -> tuple[str, TurnRecord]:
                turn = TurnRecord(submitted=time.perf_counter())
                parts = []
                async for piece in ctx.llm.chat(messages, max_tokens=GEN_TOKENS, temperature=0.0, ignore_eos=True):
                    if turn.first_token is None:
                        turn.first_token = time.perf_counter()
                    parts.append(piece)
                turn.done = time.perf_counter()
                before, after = state["acct"], await ctx.call("proc.self")
                state["acct"] = after
                turn.prompt_tokens = after["prompt_tokens"] - before["prompt_tokens"]
                turn.computed = after["prefill_computed"] - before["prefill_computed"]
                turn.generated = after["completion_tokens"] - before["completion_tokens"]
                return "".join(parts), turn

            async def tool(name: str, args: dict[str, Any]) -> str:
                result = await ctx.tools.call(f"agentic.{name}", args)
                return str(result["text"])

            record = await run_program(programs[int(index)], llm, tool, t0=float(t0))
            acct = state["acct"]
            record.extra = {k: float(acct[k]) for k in ("swaps", "restores", "recomputes")}
            return json.dumps(record.to_json())

    class Warm(Agent):
        manifest = Manifest(name="bench-agentic-warm", capabilities=Capabilities(tools=("agentic.*",)))

        async def run(self, ctx, goal):  # type: ignore[no-untyped-def]
            await ctx.tools.call("agentic.search", {"query": "warm", "seconds": 0.0, "words": 1})
            async for _ in ctx.llm.chat([{"role": "user", "content": "hi"}], max_tokens=2, temperature=0.0):
                pass

    class Plugin:
        @hookimpl
        def register_agents(self):  # type: ignore[no-untyped-def]
            return [Program, Warm]

    manager = PluginManager(load_entry_points=False)
    manager.register(Plugin(), name="bench-agentic")
    return manager


def _kernel_config(*, n_ctx: int, slots: int) -> Any:
    from aios.config import Config, KernelConfig, LLMConfig

    llm = LLMConfig(
        n_ctx=n_ctx,
        n_seq_max=slots,
        max_batch=slots,
        n_threads=THREADS,
        temperature=0.0,
        repeat_penalty=1.0,
        swap_ram_mb=SWAP_RAM_MB,
    )
    return Config(llm=llm, kernel=KernelConfig(agent_token_budget=0))


async def _aios_async(m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    from aios import paths
    from kernel import open_kernel
    from memory.store import Store

    paths.mcp_config_path().parent.mkdir(parents=True, exist_ok=True)
    paths.mcp_config_path().write_text(json.dumps({"mcpServers": {"agentic": TOOL_SERVER}}))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "aios.db")
        config = _kernel_config(n_ctx=N_CTX, slots=SLOTS)
        async with open_kernel(config, store=store, plugins=_plugins(m, turns)) as kernel:
            await kernel.wait(await kernel.spawn("bench-agentic-warm", "x"))
            t0 = time.perf_counter()
            pids = [await kernel.spawn("bench-agentic", f"{i}:{t0!r}") for i in range(m)]
            records = []
            for pid in pids:
                info = await kernel.wait(pid)
                if info.get("result") is None:
                    raise RuntimeError(f"agent {pid} failed: {info.get('error')}")
                records.append(json.loads(info["result"]))
        store.close()
    return [{"t0": t0, **r} for r in records]


def aios_run(m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-agentic-"))
    return anyio.run(_aios_async, m, turns)


# -- (2) llama-server -------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_settings(*, slots: int, n_ctx: int) -> list[str]:
    """Parallel slots of ``n_ctx`` each, continuous batching, the prompt cache (on by default per request),
    the host-RAM prompt cache of idle slots (``--cache-ram``, as big as aios's swap RAM) and cache reuse."""
    return [
        "-t", str(THREADS), "-tb", str(THREADS), "-np", str(slots), "-c", str(slots * n_ctx),
        "-b", "512", "-ub", "512", "-fa", "on", "--cont-batching",
        "--cache-ram", str(SWAP_RAM_MB), "--cache-reuse", "256", "--no-webui",
    ]  # fmt: skip


class LlamaServer:
    """A native llama-server on a free port, with the settings that suit agent workloads in this version."""

    def __init__(self, *, slots: int, n_ctx: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(server_binary()), "-m", str(_model()), "--host", "127.0.0.1", "--port", str(self.port)]
        self.args += server_settings(slots=slots, n_ctx=n_ctx)
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        import httpx

        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}); log: {self.log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"llama-server did not become ready; log: {self.log.name}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _template() -> Any:
    from llama_cpp import Llama

    from kernel.chat_template import ChatTemplate

    llm = Llama(str(_model()), vocab_only=True, verbose=False)
    return ChatTemplate(llm.metadata.get("tokenizer.chat_template"))


async def _complete(client: Any, url: str, prompt: str, n: int) -> TurnRecord:
    import httpx

    turn = TurnRecord(submitted=time.perf_counter())
    body = {
        "prompt": prompt,
        "n_predict": n,
        "temperature": 0.0,
        "repeat_penalty": 1.0,
        "ignore_eos": True,
        "cache_prompt": True,
        "stream": True,
    }
    text: list[str] = []
    for attempt in range(3):
        try:
            await _stream(client, url, body, turn, text)
            break
        except httpx.RemoteProtocolError:
            # The server closed an idle keep-alive connection as the request went out on it; nothing was
            # generated, so send it again (the wait counts against the server: ``submitted`` stays).
            if turn.first_token is not None or attempt == 2:
                raise
            log.warning("llama-server dropped a keep-alive connection before answering; sending again")
    turn.done = time.perf_counter()
    turn.text = "".join(text)  # type: ignore[attr-defined]
    return turn


async def _stream(client: Any, url: str, body: dict[str, Any], turn: TurnRecord, text: list[str]) -> None:
    async with client.stream("POST", f"{url}/completion", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("content"):
                if turn.first_token is None:
                    turn.first_token = time.perf_counter()
                text.append(chunk["content"])
            if chunk.get("stop"):
                timings = chunk.get("timings", {})
                turn.computed = int(timings.get("prompt_n", 0))
                turn.prompt_tokens = turn.computed + int(timings.get("cache_n", 0))
                turn.generated = int(timings.get("predicted_n", 0))


async def _server_programs(url: str, m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    import httpx
    from mcp import Client, StdioServerParameters

    template = _template()
    programs = workload(m, seed=SEED, turns=turns, poisson_rate=POISSON)
    params = StdioServerParameters(command=TOOL_SERVER["command"], args=TOOL_SERVER["args"], cwd=TOOL_SERVER["cwd"])
    limits = httpx.Limits(max_connections=m + 4, max_keepalive_connections=m + 4)
    async with Client(params, cache=None) as tools, httpx.AsyncClient(timeout=None, limits=limits) as client:
        await tools.call_tool("search", {"query": "warm", "seconds": 0.0, "words": 1})
        await _complete(client, url, "hi", 2)

        async def llm(messages: list[dict[str, str]]) -> tuple[str, TurnRecord]:
            turn = await _complete(client, url, template.render(messages), GEN_TOKENS)
            return turn.text, turn  # type: ignore[attr-defined]

        async def tool(name: str, args: dict[str, Any]) -> str:
            result = await tools.call_tool(name, args)
            return str(result.content[0].text)  # type: ignore[union-attr]

        records: list[ProgramRecord] = []
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            records.append(await run_program(programs[i], llm, tool, t0=t0))

        async with anyio.create_task_group() as tg:
            for i in range(m):
                tg.start_soon(one, i)
    return [{"t0": t0, **r.to_json()} for r in sorted(records, key=lambda r: r.index)]


def server_run(m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    with LlamaServer(slots=SLOTS, n_ctx=N_CTX) as server:
        return anyio.run(_server_programs, server.url, m, turns)


# -- (3) llama-cpp-python, one request at a time ----------------------------------------------------------------


async def _sequential_async(m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    import llama_cpp
    from llama_cpp import Llama, LlamaRAMCache
    from mcp import Client, StdioServerParameters

    from kernel.chat_template import ChatTemplate

    llm = Llama(str(_model()), n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS, flash_attn=True, verbose=False)
    llm.set_cache(LlamaRAMCache(capacity_bytes=SWAP_RAM_MB * 2**20))
    template = ChatTemplate(llm.metadata.get("tokenizer.chat_template"))
    ban = {0: -1e9, 2: -1e9, 4: -1e9}
    lock = anyio.Lock()
    programs = workload(m, seed=SEED, turns=turns, poisson_rate=POISSON)

    def evaluated() -> int:
        return int(llama_cpp.llama_perf_context(llm._ctx.ctx).n_p_eval)

    def complete(prompt: str, turn: TurnRecord) -> str:
        before = evaluated()
        tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        parts = []
        stream = llm.create_completion(
            tokens, max_tokens=GEN_TOKENS, temperature=0.0, repeat_penalty=1.0, logit_bias=ban, stream=True
        )
        for chunk in stream:
            text = chunk["choices"][0]["text"]  # type: ignore[index]
            if not text:  # the closing chunk (finish_reason) carries no token
                continue
            if turn.first_token is None:
                turn.first_token = time.perf_counter()
            parts.append(text)
            turn.generated += 1
        turn.prompt_tokens = len(tokens)
        turn.computed = evaluated() - before
        return "".join(parts)

    params = StdioServerParameters(command=TOOL_SERVER["command"], args=TOOL_SERVER["args"], cwd=TOOL_SERVER["cwd"])
    async with Client(params, cache=None) as tools:
        await tools.call_tool("search", {"query": "warm", "seconds": 0.0, "words": 1})

        async def llm_turn(messages: list[dict[str, str]]) -> tuple[str, TurnRecord]:
            turn = TurnRecord(submitted=time.perf_counter())
            async with lock:
                text = await anyio.to_thread.run_sync(complete, template.render(messages), turn)  # type: ignore[arg-type]
            turn.done = time.perf_counter()
            return text, turn

        async def tool(name: str, args: dict[str, Any]) -> str:
            result = await tools.call_tool(name, args)
            return str(result.content[0].text)  # type: ignore[union-attr]

        records: list[ProgramRecord] = []
        t0 = time.perf_counter()

        async def one(i: int) -> None:
            records.append(await run_program(programs[i], llm_turn, tool, t0=t0))

        async with anyio.create_task_group() as tg:
            for i in range(m):
                tg.start_soon(one, i)
    return [{"t0": t0, **r.to_json()} for r in sorted(records, key=lambda r: r.index)]


def sequential_run(m: int, turns: tuple[int, int]) -> list[dict[str, Any]]:
    return anyio.run(_sequential_async, m, turns)


# -- one-shot rows -----------------------------------------------------------------------------------------------


def _oneshot_messages(i: int) -> list[dict[str, str]]:
    from bench.scheduler import _messages

    return _messages(i)


async def _kernel_oneshot_async(rounds: list[int], slots: int) -> list[dict[str, Any]]:
    from aios import Agent, Manifest, hookimpl
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel
    from memory.store import Store

    first: dict[int, float] = {}

    class Writer(Agent):
        manifest = Manifest(name="bench-oneshot")

        async def run(self, ctx, goal):  # type: ignore[no-untyped-def]
            msgs = _oneshot_messages(int(goal))
            async for _ in ctx.llm.chat(msgs, max_tokens=ONESHOT_TOKENS, temperature=0.0, ignore_eos=True):
                first.setdefault(ctx.pid, time.perf_counter())

    class Plugin:
        @hookimpl
        def register_agents(self):  # type: ignore[no-untyped-def]
            return [Writer]

    manager = PluginManager(load_entry_points=False)
    manager.register(Plugin(), name="bench-oneshot")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "aios.db")
        async with open_kernel(_kernel_config(n_ctx=512, slots=slots), store=store, plugins=manager) as kernel:
            for n in rounds:
                t0 = time.perf_counter()
                pids = [await kernel.spawn("bench-oneshot", str(i)) for i in range(n)]
                infos = [await kernel.wait(pid) for pid in pids]
                wall = time.perf_counter() - t0
                out.append(
                    {
                        "n": n,
                        "tok_s": n * ONESHOT_TOKENS / wall,
                        "ttft": [first[p] - t0 for p in pids],
                        "swaps": sum(int(i.get("swaps", 0)) for i in infos),
                        "restores": sum(int(i.get("restores", 0)) for i in infos),
                    }
                )
        store.close()
    return out


def kernel_oneshot(rounds: list[int], slots: int) -> list[dict[str, Any]]:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-oneshot-"))
    return anyio.run(_kernel_oneshot_async, rounds, slots)


async def _server_oneshot_async(url: str, rounds: list[int]) -> list[dict[str, Any]]:
    import httpx

    template = _template()
    out = []
    async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=64)) as client:
        for n in rounds:
            turns: list[TurnRecord] = []
            t0 = time.perf_counter()

            async def one(i: int, turns: list[TurnRecord] = turns) -> None:
                turns.append(await _complete(client, url, template.render(_oneshot_messages(i)), ONESHOT_TOKENS))

            async with anyio.create_task_group() as tg:
                for i in range(n):
                    tg.start_soon(one, i)
            wall = time.perf_counter() - t0
            out.append({"n": n, "tok_s": n * ONESHOT_TOKENS / wall, "ttft": [t.first_token - t0 for t in turns]})  # type: ignore[operator]
    return out


def server_oneshot(rounds: list[int], slots: int) -> list[dict[str, Any]]:
    with LlamaServer(slots=slots, n_ctx=512) as server:
        return anyio.run(_server_oneshot_async, server.url, rounds)


# -- the run ----------------------------------------------------------------------------------------------------


def _records(raw: list[dict[str, Any]]) -> tuple[list[ProgramRecord], float]:
    return [ProgramRecord.from_json({k: v for k, v in r.items() if k != "t0"}) for r in raw], raw[0]["t0"]


def _agentic_rows(have_server: bool) -> tuple[dict[str, Any], dict[str, list[float]]]:
    figures: dict[str, Any] = {}
    cdf: dict[str, list[float]] = {}
    systems: list[tuple[str, Any]] = [("aios", aios_run)]
    if have_server:
        systems.append(("llama_server", server_run))
    if "sequential" not in SKIP:
        systems.append(("sequential", sequential_run))
    for m in M_VALUES:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in systems}
        for _ in range(REPEATS):
            for name, fn in systems:  # interleaved, so drifting load hits every system alike
                records, t0 = _records(isolated(fn, m, TURNS) if name != "llama_server" else fn(m, TURNS))
                summary = summarize(records, t0)
                if name == "aios":
                    for key in ("swaps", "restores", "recomputes"):
                        summary[key] = float(sum(r.extra.get(key, 0) for r in records))
                runs[name].append(summary)
                cdf[f"{name}_m{m}"] = sorted(r.end - r.start for r in records)
                log.info("m=%d %s: %s", m, name, {k: round(v, 3) for k, v in summary.items()})
        for name, summaries in runs.items():
            for key in summaries[0]:
                figures[f"{name}_{key}_m{m}"] = median([s[key] for s in summaries])
    return figures, cdf


#: The 1-minute load average around each system's runs (the machine is shared): {system: [before, after, ...]}.
LOAD: dict[str, list[float]] = {}


def _load(name: str) -> None:
    LOAD.setdefault(name, []).append(round(os.getloadavg()[0], 2))


def _oneshot_rows(have_server: bool) -> dict[str, Any]:
    runs: dict[str, list[float]] = {}
    for _ in range(REPEATS):  # interleaved, so drifting load hits both systems alike; medians over repeats
        _load("kernel_oneshot")
        kernel_runs = isolated(kernel_oneshot, [1, *ONESHOT_N], 16)[1:]  # the first round warms up
        _load("kernel_oneshot")
        for row in kernel_runs:
            runs.setdefault(f"kernel_oneshot_tok_s_n{row['n']}", []).append(row["tok_s"])
            runs.setdefault(f"kernel_oneshot_ttft_p50_s_n{row['n']}", []).append(percentile(row["ttft"], 50))
        if have_server:
            _load("llama_server_oneshot")
            server_runs = server_oneshot([1, *ONESHOT_N], 16)[1:]
            _load("llama_server_oneshot")
            for row in server_runs:
                runs.setdefault(f"llama_server_oneshot_tok_s_n{row['n']}", []).append(row["tok_s"])
                runs.setdefault(f"llama_server_oneshot_ttft_p50_s_n{row['n']}", []).append(percentile(row["ttft"], 50))
    return {key: median(values) for key, values in runs.items()}


def _row_of(key: str) -> str:
    if "oneshot_slots8" in key or key == "swaps_per_agent_m32_oneshot":
        return "m32oneshot"
    return "oneshot" if "_oneshot_" in key else "agentic"


def _kept(rows: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Figures of the rows this run left out, from the committed result (a reduced run updates its rows only),
    and where each of those rows was measured: ``{"rows": [...], "runs": [{"rows", "when", "machine",
    "params"}, ...]}``. A row the committed file had itself kept keeps its own earlier run's facts."""
    path = RESULTS_DIR / "agentic.json"
    if not path.exists():
        return {}, {}
    previous = json.loads(path.read_text())
    pparams = previous.get("params", {})
    old_rows = [r for r in pparams.get("rows", []) if r not in rows]
    figures = {
        k: v
        for group in ("metrics", "baseline")
        for k, v in previous.get(group, {}).items()
        if k not in ("wall_s", "swaps_per_agent_m32_oneshot") and _row_of(k) in old_rows
    }
    if not old_rows:
        return figures, {}
    earlier = pparams.get("kept_rows") or {}
    # Older files kept one run's facts directly in kept_rows; newer ones list runs.
    earlier_runs = earlier.get("runs") or ([earlier] if earlier.get("rows") else [])
    own = {
        "when": previous.get("when"),
        "machine": previous.get("machine"),
        "params": {k: v for k, v in pparams.items() if k not in ("rows", "kept_rows", "row_when")},
    }
    runs: list[dict[str, Any]] = []
    for row in old_rows:
        source = next((r for r in earlier_runs if row in r.get("rows", [])), own)
        run = next((r for r in runs if r["when"] == source.get("when")), None)
        if run is None:
            run = {"rows": [], **{k: source.get(k) for k in ("when", "machine", "params")}}
            runs.append(run)
        run["rows"].append(row)
    return figures, {"rows": old_rows, "runs": runs}


def _m32_rows(have_server: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    kernel_runs = isolated(kernel_oneshot, [1, 8, 32], SLOTS)[1:]
    for row in kernel_runs:
        n = row["n"]
        figures[f"kernel_oneshot_slots8_tok_s_n{n}"] = row["tok_s"]
        figures[f"kernel_oneshot_slots8_ttft_max_s_n{n}"] = max(row["ttft"])
        figures[f"kernel_oneshot_slots8_swaps_n{n}"] = row["swaps"]
    if have_server:
        for row in server_oneshot([1, 8, 32], SLOTS)[1:]:
            n = row["n"]
            figures[f"llama_server_oneshot_slots8_tok_s_n{n}"] = row["tok_s"]
            figures[f"llama_server_oneshot_slots8_ttft_max_s_n{n}"] = max(row["ttft"])
    return figures


def _ratios(f: dict[str, Any]) -> dict[str, Any]:
    ratio: dict[str, Any] = {}

    def put(name: str, num: str, den: str) -> None:
        if num in f and den in f and f[den]:
            ratio[name] = f[num] / f[den]

    for m in M_VALUES:
        put(
            f"mean_completion_aios_over_llama_server_m{m}",
            f"aios_mean_completion_s_m{m}",
            f"llama_server_mean_completion_s_m{m}",
        )
        put(f"makespan_aios_over_llama_server_m{m}", f"aios_makespan_s_m{m}", f"llama_server_makespan_s_m{m}")
        put(f"tok_s_aios_over_llama_server_m{m}", f"aios_tok_s_m{m}", f"llama_server_tok_s_m{m}")
        put(f"makespan_aios_over_sequential_m{m}", f"aios_makespan_s_m{m}", f"sequential_makespan_s_m{m}")
        put(f"ttft_p99_aios_over_llama_server_m{m}", f"aios_ttft_p99_s_m{m}", f"llama_server_ttft_p99_s_m{m}")
        num, den = f.get(f"aios_recomputed_tokens_m{m}"), f.get(f"llama_server_recomputed_tokens_m{m}")
        if num is not None and den is not None:
            # Both zero is parity; a zero denominator with recomputation on our side is reported as inf.
            ratio[f"recomputed_tokens_aios_over_llama_server_m{m}"] = (
                (num / den) if den else (0.0 if not num else float("inf"))
            )
    for n in ONESHOT_N:
        put(f"tok_s_kernel_over_llama_server_n{n}", f"kernel_oneshot_tok_s_n{n}", f"llama_server_oneshot_tok_s_n{n}")
        put(
            f"ttft_p50_llama_server_over_kernel_n{n}",
            f"llama_server_oneshot_ttft_p50_s_n{n}",
            f"kernel_oneshot_ttft_p50_s_n{n}",
        )
    put(
        "ttft_max_llama_server_over_kernel_m32_oneshot",
        "llama_server_oneshot_slots8_ttft_max_s_n32",
        "kernel_oneshot_slots8_ttft_max_s_n32",
    )
    put("tok_s_m32_over_m8_oneshot", "kernel_oneshot_slots8_tok_s_n32", "kernel_oneshot_slots8_tok_s_n8")
    put(
        "tok_s_kernel_over_llama_server_m32_oneshot",
        "kernel_oneshot_slots8_tok_s_n32",
        "llama_server_oneshot_slots8_tok_s_n32",
    )
    return ratio


def write_plot(cdf: dict[str, list[float]], path: Path) -> Path:
    """Completion-time CDF per system and M, as a hand-written SVG (no plotting library needed)."""
    width, height, left, bottom, top, right = 640, 400, 60, 50, 30, 170
    xmax = max((max(v) for v in cdf.values() if v), default=1.0) * 1.05
    colors = {"aios": "#1f77b4", "llama_server": "#d62728", "sequential": "#7f7f7f"}
    dashes = {8: "", 32: "6,3"}

    def x(v: float) -> float:
        return left + (width - left - right) * v / xmax

    def y(p: float) -> float:
        return height - bottom - (height - bottom - top) * p

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        ' font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">Program completion time CDF (bench/agentic)</text>',
        f'<line x1="{left}" y1="{y(0)}" x2="{width - right}" y2="{y(0)}" stroke="black"/>',
        f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{y(1)}" stroke="black"/>',
    ]
    for i in range(6):
        v = xmax * i / 5
        out.append(f'<text x="{x(v):.1f}" y="{y(0) + 15}" text-anchor="middle">{v:.0f}</text>')
        p = i / 5
        out.append(f'<text x="{left - 6}" y="{y(p) + 4:.1f}" text-anchor="end">{p:.1f}</text>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">seconds</text>')
    legend_y = top + 10
    for key, values in sorted(cdf.items()):
        if not values:
            continue
        system, _, m = key.rpartition("_m")
        color = colors.get(system, "black")
        dash = dashes.get(int(m), "2,2")
        points = [(x(0), y(0))]
        for i, v in enumerate(values):
            points += [(x(v), y(i / len(values))), (x(v), y((i + 1) / len(values)))]
        path_d = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        style = f'fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"'
        out.append(f'<polyline {style} points="{path_d}"/>')
        lx = width - right + 10
        out.append(f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 25}" y2="{legend_y}" {style}/>')
        out.append(f'<text x="{lx + 30}" y="{legend_y + 4}">{system} M={m}</text>')
        legend_y += 18
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")
    return path


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    binary = server_binary()
    have_server = binary.exists()
    if not have_server:
        log.warning(
            "llama-server is MISSING at %s: run `make bench` (or bench/build_llama_server.sh) to build it; "
            "the llama-server rows and ratios are left out of this run",
            binary,
        )
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    cdf: dict[str, list[float]] = {}
    rows: list[str] = []
    # Each row is written as soon as it is measured, so a run cut short still leaves what it measured.
    for row in ("agentic", "m32oneshot", "oneshot"):
        if row in SKIP:
            continue
        if row == "agentic":
            more, cdf = _agentic_rows(have_server)
        else:
            more = (_m32_rows if row == "m32oneshot" else _oneshot_rows)(have_server)
        figures.update(more)
        rows.append(row)
        _write(figures, cdf, rows, have_server, time.perf_counter() - started)


def _write(
    figures: dict[str, Any], cdf: dict[str, list[float]], rows: list[str], have_server: bool, wall: float
) -> None:
    kept, about = _kept(rows)
    figures = {**kept, **figures}
    n32 = figures.get("kernel_oneshot_slots8_swaps_n32")
    metrics = {k: v for k, v in figures.items() if k.startswith(("aios_", "kernel_"))}
    if n32 is not None:
        metrics["swaps_per_agent_m32_oneshot"] = n32 / 32
    metrics["wall_s"] = wall
    baseline = {k: v for k, v in figures.items() if k not in metrics}
    reduced = M_VALUES != (8, 32) or TURNS != (4, 6) or bool(SKIP) or len(rows) < 3 or POISSON > 0
    reduced = reduced or any(run["params"].get("reduced_run") for run in about.get("runs", []))
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    row_when = {row: now for row in rows}
    row_when.update({row: run["when"] for run in about.get("runs", []) for row in run["rows"]})
    write_result(
        "agentic",
        params={
            "m_values": list(M_VALUES),
            "turns": list(TURNS),
            "gen_tokens": GEN_TOKENS,
            "slots": SLOTS,
            "n_ctx_per_slot": N_CTX,
            "threads": THREADS,
            "repeats": REPEATS,
            "seed": SEED,
            "poisson_rate": POISSON,
            "rows": rows + [r for r in about.get("rows", []) if r not in rows],
            "kept_rows": about,
            "row_when": row_when,
            "loadavg_1m_around_runs": LOAD,
            "skipped": sorted(SKIP),
            "reduced_run": reduced,
            "llama_server": str(server_binary()) if have_server else "missing",
            "llama_server_args": server_settings(slots=SLOTS, n_ctx=N_CTX),
            "model": "SmolLM2-135M-Instruct Q4_1 (bundled)",
        },
        metrics=metrics,
        baseline=baseline,
        ratio=_ratios(figures),
        notes=(
            "All systems in one run on a shared 2-core machine; medians over repeats. "
            + ("REDUCED run (see params: turns, rows, skipped). " if reduced else "")
            + ("llama-server missing: its rows are absent. " if not have_server else "")
            + (
                "Rows kept from earlier runs (params.kept_rows, params.row_when): "
                + "; ".join(f"{run['rows']} from {run['when']}" for run in about["runs"])
                + ". "
                if about
                else ""
            )
        ),
    )
    if cdf:
        write_plot(cdf, RESULTS_DIR / "agentic.svg")


if __name__ == "__main__":
    main()
