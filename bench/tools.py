"""bench/tools: the DAG executor over real stdio MCP servers vs. the same calls one after another.

- Plans of width 1, 2, 4, 8: independent calls of known duration, spread over the repo's own test server
  (``slow.sleep``, two server processes) and the npm reference server ``everything``
  (``trigger-long-running-operation``, which also streams progress) when node is present. The baseline runs the
  same calls sequentially through the same host, as a ReAct loop would (call, wait, next call).
- Dispatch overhead: p50 of ``McpHost.call`` (resolve, schema check, timeouts, result value) minus p50 of a
  direct SDK ``Client.call_tool`` on another session to the same server, interleaved.
- Faults: a width-6 plan with one failing and one hanging node (timeout T): the hanging node must cost no more
  than T, and the other nodes must finish.

Results: bench/results/tools.json (``ratio.speedup_width4``, ``ratio.speedup_width8``,
``metrics.dispatch_overhead_p50_ms``, ``metrics.hang_cost_over_timeout``).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from bench._results import median, percentile, write_result

ROOT = Path(__file__).resolve().parent.parent
NPM = ROOT / ".venv" / "mcp-npm" / "node_modules" / "@modelcontextprotocol"
STEP_S = 0.4
REPEATS = 3
OVERHEAD_CALLS = 300
HANG_TIMEOUT_S = 1.0


def _servers() -> dict[str, Any]:
    slow = {"command": sys.executable, "args": ["-m", "tests.mcp_servers.slow_server"], "cwd": str(ROOT)}
    servers: dict[str, Any] = {"slow": dict(slow), "slow2": dict(slow)}
    everything = NPM / "server-everything" / "dist" / "index.js"
    if shutil.which("node") and everything.exists():
        servers["everything"] = {"command": "node", "args": [str(everything)]}
    return servers


def _call(i: int, servers: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The i-th call of a plan: alternate servers so wide plans span processes and implementations."""
    kind = i % 3
    if kind == 2 and "everything" in servers:
        return "everything.trigger-long-running-operation", {"duration": STEP_S, "steps": 2}
    return ("slow.sleep" if kind == 0 else "slow2.sleep"), {"seconds": STEP_S}


async def _run() -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    from tools.config import parse_servers
    from tools.executor import Executor
    from tools.host import McpHost
    from tools.plan import load_plan

    servers = _servers()
    configs = parse_servers({"mcpServers": servers})
    metrics: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    ratio: dict[str, Any] = {}
    async with McpHost(configs) as host:
        await host.start_all()
        down = [s["name"] for s in host.servers() if s["state"] != "ready"]
        if down:
            raise RuntimeError(f"servers did not start: {down}")

        async def call(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> Any:
            return await host.call(tool, args, timeout=timeout, progress=progress)

        executor = Executor(call, describe=host.resolve)
        for width in (1, 2, 4, 8):
            calls = [_call(i, servers) for i in range(width)]
            plan = load_plan({"steps": [{"id": f"n{i}", "tool": t, "args": a} for i, (t, a) in enumerate(calls)]})
            dag, seq = [], []
            for _ in range(REPEATS):
                run = await executor.run(plan)
                assert run.ok, run.to_json()
                dag.append(run.metrics["makespan_s"])
                started = time.perf_counter()
                for tool, args in calls:  # ReAct-style: one call, wait for it, then the next
                    result = await host.call(tool, args)
                    assert not result.is_error, result.text
                seq.append(time.perf_counter() - started)
            metrics[f"dag_makespan_width{width}_s"] = round(median(dag), 4)
            baseline[f"sequential_width{width}_s"] = round(median(seq), 4)
            ratio[f"speedup_width{width}"] = round(median(seq) / median(dag), 3)
            metrics[f"parallel_width_mean_width{width}"] = run.metrics["parallel_width_mean"]

        # Dispatch overhead: the host's call path vs. a direct SDK call to the same server binary.
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "tests.mcp_servers.slow_server"], cwd=str(ROOT)
        )
        async with Client(params, cache=None) as direct:
            host_t, direct_t = [], []
            for i in range(OVERHEAD_CALLS + 20):
                # Alternate which goes first, so neither side always inherits the other's wake-ups.
                pair: dict[str, float] = {}
                for side in ("host", "direct") if i % 2 else ("direct", "host"):
                    t0 = time.perf_counter()
                    if side == "host":
                        assert not (await host.call("slow.echo", {"text": "x"})).is_error
                    else:
                        assert not (await direct.call_tool("echo", {"text": "x"})).is_error
                    pair[side] = time.perf_counter() - t0
                if i >= 20:  # warm-up
                    host_t.append(pair["host"])
                    direct_t.append(pair["direct"])
        metrics["host_call_p50_ms"] = round(median(host_t) * 1000, 3)
        baseline["direct_sdk_call_p50_ms"] = round(median(direct_t) * 1000, 3)
        # Paired differences (each host call next to a direct one) cancel most of the shared machine's noise.
        paired = [h - d for h, d in zip(host_t, direct_t, strict=True)]
        metrics["dispatch_overhead_p50_ms"] = round(median(paired) * 1000, 3)
        metrics["dispatch_overhead_p90_ms"] = round(percentile(paired, 90) * 1000, 3)

        # One failing and one hanging node among working ones.
        steps = [{"id": f"ok{i}", "tool": t, "args": a} for i, (t, a) in enumerate(_call(i, servers) for i in range(4))]
        steps += [
            {"id": "fails", "tool": "slow.fail", "args": {"message": "planned failure"}, "retries": 0},
            {"id": "hangs", "tool": "slow.hang", "args": {"tag": "bench"}, "timeout_s": HANG_TIMEOUT_S},
            {"id": "after_fail", "tool": "slow.echo", "args": {"text": "${fails}"}},
        ]
        costs, spans = [], []
        for _ in range(REPEATS):
            run = await executor.run(load_plan({"steps": steps}))
            res = run.steps
            assert all(not res[f"ok{i}"].result.is_error for i in range(4)), run.to_json()
            assert res["fails"].result.is_error and res["hangs"].result.error_kind == "timeout"
            assert res["after_fail"].skipped
            costs.append(res["hangs"].result.elapsed_s / HANG_TIMEOUT_S)
            spans.append(run.metrics["makespan_s"])
        metrics["hang_cost_over_timeout"] = round(median(costs), 4)
        metrics["fault_plan_makespan_over_timeout"] = round(median(spans) / HANG_TIMEOUT_S, 4)
        metrics["servers"] = sorted(servers)
    return {"metrics": metrics, "baseline": baseline, "ratio": ratio}


# -- the planner on the bundled model (reported, not gated) ------------------------------------------

TASKS: list[tuple[str, set[str]]] = [
    ("What is the current time in Tokyo?", {"clock.get_current_time", "time.now"}),
    ("Show the last 3 commits of the git repository at {repo}", {"git.git_log"}),
    ("What is the git status of the working tree in {repo}?", {"git.git_status"}),
    ("Add the numbers 2 and 40", {"everything.get-sum", "slow.add"}),
    ("Echo back the message hello", {"everything.echo", "slow.echo"}),
    ("Read the text file {dir}/notes.txt", {"files.read_text_file", "files.read_file"}),
    ("List the files in the directory {dir}", {"files.list_directory", "files.list_directory_with_sizes"}),
    ("Look up facts about the city of Paris", {"slow.lookup"}),
    ("Convert 09:00 New York time to London time", {"clock.convert_time"}),
    ("Wait for one second", {"slow.sleep", "time.sleep"}),
]


async def _planner_eval(home: Path) -> dict[str, Any]:
    import subprocess

    from aios.api import Agent, Capabilities, Context, Manifest
    from aios.config import Config
    from aios.hookspecs import hookimpl
    from kernel import open_kernel
    from tools.config import write_mcp_file
    from tools.planner import Planner

    repo, folder = home / "repo", home / "files"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("remember the milk\n")
    repo.mkdir()
    for cmd in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *cmd], cwd=repo, check=True)
    servers = _servers()
    servers.pop("slow2")
    servers["git"] = {
        "command": str(Path(sys.executable).parent / "mcp-server-git"),
        "args": ["--repository", str(repo)],
    }
    servers["clock"] = {"command": str(Path(sys.executable).parent / "mcp-server-time")}
    fs_entry = NPM / "server-filesystem" / "dist" / "index.js"
    if shutil.which("node") and fs_entry.exists():
        servers["files"] = {"command": "node", "args": [str(fs_entry), str(folder)]}
    write_mcp_file({"mcpServers": servers})
    rows: list[dict[str, Any]] = []

    class PlannerEval(Agent):
        manifest = Manifest(name="planner-eval", capabilities=Capabilities(tools=("*",)))

        async def run(self, ctx: Context, goal: str) -> str | None:
            narrowed = Planner(ctx, candidates=int(goal))
            for task, expected in TASKS:
                text = task.format(repo=repo, dir=folder)
                cands = await narrowed.candidates(text)
                started = time.perf_counter()
                attempt = await narrowed.write_plan(text, cands)
                rows.append(
                    {
                        "candidates": int(goal),
                        "task": text,
                        "expected": sorted(expected),
                        "in_candidates": bool(expected & set(attempt.candidates)),
                        "valid": attempt.valid,
                        "tools": attempt.tools,
                        "first_ok": bool(attempt.tools) and attempt.tools[0] in expected,
                        "any_ok": bool(expected & set(attempt.tools)),
                        "plan_s": round(time.perf_counter() - started, 2),
                        "problems": attempt.problems,
                    }
                )
            return None

    class Plugin:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return [PlannerEval]

    async with open_kernel(Config()) as kernel:
        kernel.plugins.register(Plugin(), name="planner-eval")
        for n in (3, 50):  # narrowed to 3 candidates vs. every read-only tool shown
            await kernel.wait(await kernel.spawn("planner-eval", str(n)))
    out: dict[str, Any] = {"rows": rows}
    for n, label in ((3, "narrowed3"), (50, "all_tools")):
        mine = [r for r in rows if r["candidates"] == n]
        if mine:
            out[f"planner_{label}_plan_validity"] = round(sum(r["valid"] for r in mine) / len(mine), 3)
            out[f"planner_{label}_tool_accuracy"] = round(sum(r["first_ok"] for r in mine) / len(mine), 3)
            out[f"planner_{label}_candidate_recall"] = round(sum(r["in_candidates"] for r in mine) / len(mine), 3)
            out[f"planner_{label}_plan_s_median"] = median([r["plan_s"] for r in mine])
    return out


def main() -> None:
    import json
    import os
    import tempfile

    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AIOS_HOME"] = tmp  # server logs and the eval's mcp.json stay out of the real home
        out = anyio.run(_run)
        if os.environ.get("AIOS_BENCH_SKIP_PLANNER") != "1":
            planner = anyio.run(_planner_eval, Path(tmp))
            rows = planner.pop("rows")
            out["metrics"].update(planner)
            (Path(__file__).parent / "results" / "tools_planner_tasks.json").write_text(
                json.dumps(rows, indent=2) + "\n"
            )
    write_result(
        "tools",
        params={
            "step_s": STEP_S,
            "repeats": REPEATS,
            "overhead_calls": OVERHEAD_CALLS,
            "hang_timeout_s": HANG_TIMEOUT_S,
        },
        metrics=out["metrics"],
        baseline=out["baseline"],
        ratio=out["ratio"],
        notes="Medians of repeated runs; DAG and sequential runs interleaved on the same warm servers.",
    )


if __name__ == "__main__":
    main()
