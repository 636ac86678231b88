"""bench/syscalls: what the capability check and the audit row cost.

In-process: one syscall touching a tool and a file (validate, two guard decisions, one audit row, handler)
through ``Kernel.dispatch``, against calling the same handler directly with an already-validated request;
interleaved in one run, repeated, medians of the per-round percentiles. Over the socket: the round trip of
``POST /v1/call`` to an `aios serve` daemon in another process (FakeBackend), made with a process token.

    .venv/bin/python -m bench syscalls
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio

from bench._results import median, percentile, write_result

ROUNDS = 5
CALLS = 4000
SOCKET_CALLS = 2000

PLUGIN = textwrap.dedent(
    """
    from typing import Any

    from aios import Agent, Capabilities, Context, Manifest
    from aios.hookspecs import hookimpl
    from kernel.syscalls import SYSCALLS, Access, Request, syscall


    class EchoRequest(Request):
        n: int
        path: str


    if "proc.bench_echo" not in SYSCALLS:

        @syscall(
            "proc.bench_echo",
            EchoRequest,
            access=lambda k, p, r: [Access("tool", "bench.echo"), Access("file", r.path)],
        )
        async def bench_echo(kernel: Any, proc: Any, request: EchoRequest) -> dict[str, int]:
            return {"n": request.n * 2}


    class BenchAgent(Agent):
        manifest = Manifest(
            name="bench",
            interactive=True,
            capabilities=Capabilities(tools=("bench.*",), files_read=(GRANT,)),
        )

        async def run(self, ctx: Context, goal: str) -> str | None:
            while await ctx.input() is not None:
                pass
            return None


    @hookimpl
    def register_agents() -> list[type[Agent]]:
        return [BenchAgent]
    """
)


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="aios-bench-", dir="/tmp"))
    (home / "plugins").mkdir()
    (home / "grant").mkdir()
    (home / "plugins" / "bench_agent.py").write_text(f"GRANT = {str(home / 'grant')!r}\n" + PLUGIN)
    (home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    return home


async def _inproc(home: Path) -> dict[str, list[float]]:
    from aios.config import load_config
    from aios.plugin_manager import PluginManager
    from kernel.backends.fake import FakeBackend
    from kernel.kernel import open_kernel
    from kernel.syscalls import SYSCALLS
    from memory.store import Store

    store = Store.open(home / "aios.db")
    plugins = PluginManager(load_entry_points=False)
    config = load_config()
    out: dict[str, list[float]] = {"dispatch": [], "direct": [], "overhead_p50": [], "overhead_p99": []}
    try:
        async with open_kernel(config, runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
            pid = await kernel.spawn("bench")
            proc = kernel._procs[pid]
            spec = SYSCALLS["proc.bench_echo"]
            payload = {"n": 21, "path": str(home / "grant" / "data.txt")}
            request = spec.request.model_validate(payload)
            for _ in range(300):  # warm-up
                await kernel.dispatch(proc, "proc.bench_echo", payload)
                await spec.handler(kernel, proc, request)
            clock = time.perf_counter_ns
            for _ in range(ROUNDS):
                via, direct = [], []
                for _ in range(CALLS):
                    t0 = clock()
                    await kernel.dispatch(proc, "proc.bench_echo", payload)
                    t1 = clock()
                    await spec.handler(kernel, proc, request)
                    t2 = clock()
                    via.append((t1 - t0) / 1000)
                    direct.append((t2 - t1) / 1000)
                out["dispatch"].append(median(via))
                out["direct"].append(median(direct))
                out["overhead_p50"].append(median(via) - median(direct))
                out["overhead_p99"].append(percentile(via, 99) - percentile(direct, 99))
                kernel.audit.flush()
            rows = store.db.execute("SELECT count(*) FROM audit WHERE syscall = 'proc.bench_echo'").fetchone()[0]
            out["audit_rows"] = [float(rows)]
    finally:
        store.close()
    return out


def _socket(home: Path) -> dict[str, list[float]]:
    import httpx

    env = {**os.environ, "AIOS_HOME": str(home)}
    sock = home / "run" / "kernel.sock"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-prompt"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"aios serve did not start: {daemon.stderr.read() if daemon.stderr else ''}")
            time.sleep(0.1)
        time.sleep(0.2)
        token = (home / "run" / "frontend.token").read_text()

        def client(secret: str) -> httpx.Client:
            return httpx.Client(
                transport=httpx.HTTPTransport(uds=str(sock)),
                base_url="http://aios",
                headers={"authorization": f"Bearer {secret}"},
            )

        with client(token) as c:
            spawned = c.post("/v1/spawn", json={"agent": "bench", "token": True}).json()["result"]
        body = {"syscall": "proc.bench_echo", "payload": {"n": 21, "path": str(home / "grant" / "data.txt")}}
        out: dict[str, list[float]] = {"rtt_p50": [], "rtt_p99": []}
        with client(spawned["token"]) as c:
            for _ in range(200):
                assert c.post("/v1/call", json=body).json() == {"result": {"n": 42}}
            for _ in range(ROUNDS):
                times = []
                for _ in range(SOCKET_CALLS // ROUNDS):
                    t0 = time.perf_counter()
                    response = c.post("/v1/call", json=body)
                    times.append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
                out["rtt_p50"].append(median(times))
                out["rtt_p99"].append(percentile(times, 99))
        return out
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()


def main() -> None:
    home = _home()
    os.environ["AIOS_HOME"] = str(home)
    from aios.plugin_manager import PluginManager

    PluginManager(load_entry_points=False).approve("bench")  # as the user would, on its first run
    inproc = anyio.run(_inproc, home)
    sock = _socket(home)
    metrics: dict[str, Any] = {
        "inproc_overhead_p50_us": round(median(inproc["overhead_p50"]), 2),
        "inproc_overhead_p99_us": round(median(inproc["overhead_p99"]), 2),
        "socket_rtt_p50_ms": round(median(sock["rtt_p50"]), 3),
        "socket_rtt_p99_ms": round(median(sock["rtt_p99"]), 3),
    }
    baseline = {
        "direct_call_p50_us": round(median(inproc["direct"]), 2),
        "dispatch_p50_us": round(median(inproc["dispatch"]), 2),
    }
    ratio = {"dispatch_over_direct_p50": round(median(inproc["dispatch"]) / max(median(inproc["direct"]), 1e-9), 2)}
    write_result(
        "syscalls",
        params={
            "rounds": ROUNDS,
            "calls_per_round": CALLS,
            "socket_calls": SOCKET_CALLS,
            "syscall": "proc.bench_echo (tool + file access, audited)",
            "audit_rows_written": int(inproc["audit_rows"][0]),
        },
        metrics=metrics,
        baseline=baseline,
        ratio=ratio,
        notes=(
            "In-process overhead = p50(dispatch) - p50(direct handler call), interleaved, median of rounds. "
            "Audit rows are queued and committed in batches by one writer thread (kernel/audit.py). "
            "Socket: sync httpx client -> uvicorn on a Unix socket, aios serve in another process, FakeBackend."
        ),
    )
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
