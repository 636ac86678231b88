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
                t0 = time.perf_counter()
                r1 = await host.call("slow.echo", {"text": "x"})
                t1 = time.perf_counter()
                r2 = await direct.call_tool("echo", {"text": "x"})
                t2 = time.perf_counter()
                assert not r1.is_error and not r2.is_error
                if i >= 20:  # warm-up
                    host_t.append(t1 - t0)
                    direct_t.append(t2 - t1)
        metrics["host_call_p50_ms"] = round(median(host_t) * 1000, 3)
        baseline["direct_sdk_call_p50_ms"] = round(median(direct_t) * 1000, 3)
        metrics["dispatch_overhead_p50_ms"] = round((median(host_t) - median(direct_t)) * 1000, 3)
        metrics["dispatch_overhead_p90_ms"] = round((percentile(host_t, 90) - percentile(direct_t, 90)) * 1000, 3)

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


def main() -> None:
    sys.path.insert(0, str(ROOT))
    out = anyio.run(_run)
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
