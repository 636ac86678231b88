"""Control calls under a search load: ``GET /v1/ps`` round trips while many clients search the file index.

A real kernel runs as ``aios serve`` in its own process (``AIOS_HOME`` a temp dir, FakeBackend), with a
few hundred text files (bench/semfs_corpus.py) mounted, indexed and embedded. ``clients`` agents (one
process token each) then call ``fs.search`` (hybrid: FTS5 + query embedding + chroma) over ``POST /v1/call``
as fast as they can, while ``pollers`` time ``GET /v1/ps`` with the front-end token. The load comes from
other OS processes (searchers spread over a few worker processes, pollers in one of their own), so the
kernel's event loop serves the load and does not make it. Reported: ps latency p50/p99 (and idle, before
the load), searches/s, errors, and the kernel's RSS at the start and end of the load (sampled each second).

    .venv/bin/python -m bench._security_load --clients 32 --pollers 4 --seconds 30

``bench/security.py`` imports :func:`measure_ps_under_load` for ``metrics.ps_p99_ms_under_load``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench._results import median, percentile

__all__ = ["measure_ps_under_load"]

ROOT = Path(__file__).resolve().parent.parent
#: Worker processes the searchers are spread over (each runs its clients as asyncio tasks).
SEARCH_PROCESSES = 4
#: Default pause between one poller's ps calls: a TUI refreshing, not a flood (0: back to back).
POLL_INTERVAL_S = 0.02

PLUGIN = textwrap.dedent(
    """
    from aios import Agent, Capabilities, Context, Manifest
    from aios.hookspecs import hookimpl


    class LoadSearcher(Agent):
        manifest = Manifest(
            name="load-searcher",
            interactive=True,
            capabilities=Capabilities(files_read=(CORPUS,)),
        )

        async def run(self, ctx: Context, goal: str) -> str | None:
            while await ctx.input() is not None:
                pass
            return None


    @hookimpl
    def register_agents() -> list[type[Agent]]:
        return [LoadSearcher]
    """
)


def _status(pid: int) -> tuple[float, int]:
    """The process's resident set (MB) and its number of threads, from /proc."""
    rss, threads = float("nan"), 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    except OSError:
        pass
    return rss, threads


def _client(sock: Path, token: str, *, timeout: float = 120.0) -> Any:
    import httpx

    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(sock)),
        base_url="http://aios",
        headers={"authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def _result(response: Any) -> Any:
    data = response.json()
    if response.status_code >= 400 or "error" in data:
        raise RuntimeError(f"kernel answered {response.status_code}: {data.get('error')}")
    return data["result"]


# -- load generators (run in their own processes) ------------------------------------------------------


async def _searchers(sock: str, tokens: list[str], queries: list[str], start_at: float, end_at: float) -> dict:
    import httpx

    out: dict[str, Any] = {"ok": 0, "errors": 0, "latency_ms": [], "error_samples": []}

    async def one(token: str, seed: int) -> None:
        rng = random.Random(seed)
        transport = httpx.AsyncHTTPTransport(uds=sock)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://aios", headers=headers, timeout=120) as c:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            while time.time() < end_at:
                body = {"syscall": "fs.search", "payload": {"query": rng.choice(queries), "k": 10}}
                t0 = time.perf_counter()
                try:
                    response = await c.post("/v1/call", json=body)
                    _result(response)
                except Exception as exc:  # counted, and the load goes on
                    out["errors"] += 1
                    if len(out["error_samples"]) < 3:
                        out["error_samples"].append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                if time.time() <= end_at:  # calls still running at the end would skew the rate
                    out["ok"] += 1
                    out["latency_ms"].append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(one(t, i) for i, t in enumerate(tokens)))
    return out


async def _pollers(sock: str, token: str, pollers: int, interval: float, start_at: float, end_at: float) -> dict:
    import httpx

    out: dict[str, Any] = {"ok": 0, "errors": 0, "latency_ms": [], "error_samples": []}

    async def one() -> None:
        transport = httpx.AsyncHTTPTransport(uds=sock)
        headers = {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://aios", headers=headers, timeout=120) as c:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            while time.time() < end_at:
                t0 = time.perf_counter()
                try:
                    _result(await c.get("/v1/ps"))
                except Exception as exc:
                    out["errors"] += 1
                    if len(out["error_samples"]) < 3:
                        out["error_samples"].append(f"{type(exc).__name__}: {exc}"[:300])
                else:
                    out["ok"] += 1
                    out["latency_ms"].append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(interval)

    await asyncio.gather(*(one() for _ in range(pollers)))
    return out


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One load process (``python -m bench._security_load --worker SPEC``): its figures, as JSON on stdout."""
    if spec["kind"] == "search":
        coro = _searchers(spec["sock"], spec["tokens"], spec["queries"], spec["start_at"], spec["end_at"])
    else:
        coro = _pollers(
            spec["sock"], spec["token"], spec["pollers"], spec["interval"], spec["start_at"], spec["end_at"]
        )
    return {"kind": spec["kind"], **asyncio.run(coro)}


def _start_worker(spec: dict[str, Any], home: Path) -> subprocess.Popen[str]:
    # Plain subprocesses: multiprocessing's spawn would re-import the caller's __main__ module.
    spec_file = home / f"worker-{spec['kind']}-{os.urandom(4).hex()}.json"
    spec_file.write_text(json.dumps(spec))
    return subprocess.Popen(
        [sys.executable, "-m", "bench._security_load", "--worker", str(spec_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# -- the kernel --------------------------------------------------------------------------------------


def _home(files: int, kernel_setup: str) -> tuple[Path, Path, list[str]]:
    from bench.semfs_corpus import generate

    home = Path(tempfile.mkdtemp(prefix="aios-load-", dir="/tmp"))  # AF_UNIX paths must stay short
    corpus = home / "corpus"
    queries = generate(corpus, fillers=max(0, files - 58))
    (home / "plugins").mkdir()
    plugin = f"CORPUS = {str(corpus)!r}\n" + PLUGIN + ("\n" + kernel_setup + "\n" if kernel_setup else "")
    (home / "plugins" / "load_searcher.py").write_text(plugin)
    (home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    _approve(home, "load-searcher")
    return home, corpus, sorted({q.text for q in queries})


def _approve(home: Path, agent: str) -> None:
    """Record the user's approval of the one-file plugin's agent, as `aios plugins approve` does."""
    from aios.plugin_manager import PluginManager

    before = os.environ.get("AIOS_HOME")
    os.environ["AIOS_HOME"] = str(home)
    try:
        PluginManager(load_entry_points=False).approve(agent)
    finally:
        if before is None:
            os.environ.pop("AIOS_HOME", None)
        else:
            os.environ["AIOS_HOME"] = before


def _start_kernel(home: Path) -> tuple[subprocess.Popen[bytes], Path, str]:
    env = {**os.environ, "AIOS_HOME": str(home)}
    env.pop("AIOS_SOCKET", None)
    sock = home / "run" / "kernel.sock"
    log = (home / "kernel.log").open("wb")  # a pipe nobody reads would block the kernel once full
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve", "--no-prompt"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    token_file = home / "run" / "frontend.token"
    while not (sock.exists() and token_file.exists() and token_file.read_text().strip()):
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            raise RuntimeError(f"aios serve did not start:\n{(home / 'kernel.log').read_text()[-3000:]}")
        time.sleep(0.1)
    return daemon, sock, token_file.read_text().strip()


def _index(sock: Path, token: str, corpus: Path, *, timeout: float = 900.0) -> dict[str, Any]:
    """Mount and index the corpus, then wait until every chunk has its vector."""
    with _client(sock, token, timeout=timeout) as c:
        _result(c.post("/v1/fs", json={"syscall": "fs.mount", "payload": {"path": str(corpus), "name": "corpus"}}))
        deadline = time.monotonic() + timeout
        while True:
            status = _result(c.post("/v1/fs", json={"syscall": "fs.mounts", "payload": {}}))["status"]
            if status["vectors_pending"] == 0:
                return dict(status)
            if time.monotonic() > deadline:
                raise RuntimeError(f"vectors still pending after {timeout:.0f}s: {status}")
            time.sleep(1.0)


def _idle_ps(sock: Path, token: str, n: int = 200) -> list[float]:
    times = []
    with _client(sock, token) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            _result(c.get("/v1/ps"))
            times.append((time.perf_counter() - t0) * 1000)
    return times


def measure_ps_under_load(
    *,
    clients: int = 32,
    pollers: int = 4,
    seconds: float = 30.0,
    files: int = 300,
    poll_interval_s: float = POLL_INTERVAL_S,
    kernel_setup: str = "",
    keep_home: bool = False,
) -> dict[str, Any]:
    """Time ``GET /v1/ps`` while ``clients`` agents search over the socket for ``seconds``.

    ``files``: corpus size (text files, mounted and fully embedded before the load starts).
    ``poll_interval_s``: each poller's pause between ps calls (0: back to back).
    ``kernel_setup``: Python run in the kernel process at plugin load (experiments: pool sizes, patches).
    Returns ps latency (``ps_p50_ms``, ``ps_p99_ms``, idle ones before the load), ``searches_per_s``,
    search latency, ``errors``, and the kernel's RSS (at boot, once indexed, then over the load:
    ``rss_start_mb``, ``rss_end_mb``, ``rss_peak_mb``, ``rss_samples_mb`` one a second) and its most threads
    at once (``threads_peak``).
    """
    home, corpus, queries = _home(files, kernel_setup)
    try:
        daemon, sock, token = _start_kernel(home)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise
    workers: list[subprocess.Popen[str]] = []
    try:
        rss_boot = _status(daemon.pid)[0]
        t0 = time.monotonic()
        status = _index(sock, token, corpus)
        index_s = time.monotonic() - t0
        rss_indexed = _status(daemon.pid)[0]
        with _client(sock, token) as c:
            tokens = [
                _result(c.post("/v1/spawn", json={"agent": "load-searcher", "token": True}))["token"]
                for _ in range(clients)
            ]
        with _client(sock, tokens[0]) as c:
            for q in queries[:5]:  # loads the embedding model and chroma before the clock starts
                _result(c.post("/v1/call", json={"syscall": "fs.search", "payload": {"query": q, "k": 10}}))
        idle = _idle_ps(sock, token)

        start_at = time.time() + 5.0  # workers import httpx and connect first
        end_at = start_at + seconds
        window = {"sock": str(sock), "start_at": start_at, "end_at": end_at}
        specs: list[dict[str, Any]] = [
            {"kind": "search", "tokens": tokens[i::SEARCH_PROCESSES], "queries": queries, **window}
            for i in range(min(SEARCH_PROCESSES, clients))
        ]
        specs.append({"kind": "ps", "token": token, "pollers": pollers, "interval": poll_interval_s, **window})
        workers = [_start_worker(spec, home) for spec in specs]
        while time.time() < start_at:
            time.sleep(0.01)
        samples = [_status(daemon.pid)]
        while time.time() < end_at:
            time.sleep(min(1.0, max(0.0, end_at - time.time())))
            samples.append(_status(daemon.pid))
        got: dict[str, list[dict[str, Any]]] = {"search": [], "ps": []}
        for w in workers:
            out, err = w.communicate(timeout=seconds + 300)
            if w.returncode != 0:
                raise RuntimeError(f"a load worker failed:\n{err[-3000:]}")
            data = json.loads(out)
            got[data.pop("kind")].append(data)
        if daemon.poll() is not None:
            raise RuntimeError(f"the kernel died under load:\n{(home / 'kernel.log').read_text()[-3000:]}")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        if not keep_home:
            shutil.rmtree(home, ignore_errors=True)

    ps = [t for d in got["ps"] for t in d["latency_ms"]]
    searches = [t for d in got["search"] for t in d["latency_ms"]]
    samples_out = [round(rss, 1) for rss, _ in samples]
    return {
        "clients": clients,
        "pollers": pollers,
        "seconds": seconds,
        "poll_interval_s": poll_interval_s,
        "files": status["files"],
        "chunks": status["chunks"],
        "index_and_embed_s": round(index_s, 1),
        "ps_calls": len(ps),
        "ps_p50_ms": round(median(ps), 2),
        "ps_p99_ms": round(percentile(ps, 99), 2),
        "ps_max_ms": round(max(ps, default=float("nan")), 2),
        "idle_ps_p50_ms": round(median(idle), 2),
        "idle_ps_p99_ms": round(percentile(idle, 99), 2),
        "searches": len(searches),
        "searches_per_s": round(len(searches) / seconds, 1),
        "search_p50_ms": round(median(searches), 1),
        "search_p99_ms": round(percentile(searches, 99), 1),
        "errors": sum(d["errors"] for k in got for d in got[k]),
        "error_samples": [s for k in got for d in got[k] for s in d["error_samples"]][:5],
        "rss_boot_mb": round(rss_boot, 1),
        "rss_indexed_mb": round(rss_indexed, 1),
        "rss_start_mb": samples_out[0],
        "rss_end_mb": samples_out[-1],
        "rss_peak_mb": max(samples_out),
        "rss_samples_mb": samples_out,
        "threads_peak": max(n for _, n in samples),
        "home": str(home) if keep_home else None,
    }


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(prog="python -m bench._security_load", description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S)
    parser.add_argument("--kernel-setup", default="", help="Python run in the kernel process (experiments)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one load process
    args = parser.parse_args(argv)
    if args.worker:
        sys.stdout.write(json.dumps(_worker(json.loads(Path(args.worker).read_text()))))
        return
    result = measure_ps_under_load(
        clients=args.clients,
        pollers=args.pollers,
        seconds=args.seconds,
        files=args.files,
        poll_interval_s=args.poll_interval,
        kernel_setup=args.kernel_setup,
    )
    table = Table(title=f"ps under load: {args.clients} clients searching, {args.pollers} polling ps")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key == "rss_samples_mb":
            value = f"{len(value)} samples, min {min(value)} max {max(value)}"
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)


if __name__ == "__main__":
    main()
