"""Access control under attack: escapes over the adversarial corpus and the races, the cost of the confined
open, and control-call latency under a search load.

1. **Escapes.** A kernel on its real socket (FakeBackend) with the semantic FS; agents with process tokens.
   The whole corpus of tests/security (symlinks and hard links out of a grant, chains, magic links, ``..``
   through linked folders, paths beside and outside the grant, every mutating call by read-only callers),
   then the race: a separate process swaps a granted file and granted folders for links to the outside
   while ``RACE_CALLS`` calls each of cat, write, ls, index and mount run. An escape is any outside content
   returned, any file outside created, changed or removed, any mount outside the grant, any outside
   content in the index, or a refused-by-design call that was allowed.
2. **Confined-open overhead.** Reading a small file in a grant through ``aios.confined`` (root fd,
   ``openat2(RESOLVE_BENEATH)`` below it, fstat) against a plain ``open``/``read``, interleaved, medians.
3. **Control under load.** ``GET /v1/ps`` p99 with 32 clients searching (bench/_security_load.py).

    python -m bench security
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._results import median, percentile, write_result

SECURITY_TESTS = Path(__file__).resolve().parent.parent / "tests" / "security"
RACE_CALLS = int(os.environ.get("AIOS_BENCH_RACE_CALLS", "500"))
OVERHEAD_REPS = 20_000
LOAD_SECONDS = float(os.environ.get("AIOS_BENCH_LOAD_S", "30"))


async def _escapes(tmp: Path) -> dict[str, Any]:
    sys.path.insert(0, str(SECURITY_TESTS))
    from _adversary import corpus, leaked, open_world, run_attempt, snapshot
    from _attacks import KINDS, indexed_secrets, race_all

    async with open_world(tmp) as (rig, world, callers):
        watched = (world.private, world.outside, world.root / "free")
        before = snapshot(*watched)
        granted_before = snapshot(world.granted)
        attempts = corpus(world)
        corpus_escapes = 0
        for attempt in attempts:
            outcome, detail = await run_attempt(callers, attempt)
            corpus_escapes += outcome == "allowed" or leaked(detail)
        corpus_changes = len(set(snapshot(*watched).items()) ^ set(before.items()))
        corpus_changes += len(set(snapshot(world.granted).items()) ^ set(granted_before.items()))
        started = time.monotonic()
        tallies = await race_all(world, callers, RACE_CALLS)
        race_s = time.monotonic() - started
        race_changes = len(set(snapshot(*watched).items()) ^ set(before.items()))
        indexed = indexed_secrets(rig)
        bad_mounts = [str(m.path) for m in rig.kernel.services["semfs"].db.mounts() if m.path != world.mount]
    race_calls = sum(t.calls for t in tallies.values())
    escapes = corpus_escapes + corpus_changes + race_changes + indexed + len(bad_mounts)
    escapes += sum(t.escapes for t in tallies.values())
    return {
        "escape_attempts": len(attempts) + race_calls,
        "escapes": escapes,
        "corpus_attempts": len(attempts),
        "corpus_escapes": corpus_escapes,
        "race_calls": race_calls,
        "race_calls_per_kind": {k: tallies[k].calls for k in KINDS},
        "race_denied": sum(t.denied for t in tallies.values()),
        "race_ok": sum(t.ok for t in tallies.values()),
        "race_escapes": sum(t.escapes for t in tallies.values()),
        "race_internal_errors": sum(t.internal for t in tallies.values()),
        "race_s": round(race_s, 1),
        "files_changed_outside": corpus_changes + race_changes,
        "outside_chunks_indexed": indexed,
        "mounts_outside_grant": len(bad_mounts),
    }


def _overhead(tmp: Path) -> dict[str, Any]:
    from aios.confined import Confined

    grant = tmp / "grant"
    mount = grant / "mount"
    (mount / "notes").mkdir(parents=True)
    path = mount / "notes" / "todo.md"
    path.write_text("buy apples\n" * 20)
    tree = Confined.at(mount, anchor=grant)  # a mount inside the grant: two levels, as for an agent

    def plain() -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, 1 << 16)
        finally:
            os.close(fd)

    def confined() -> bytes:
        return tree.read(path)

    assert plain() == confined()
    times: dict[str, list[float]] = {"plain": [], "confined": []}
    for _ in range(OVERHEAD_REPS):
        for name, fn in (("plain", plain), ("confined", confined)):
            t0 = time.perf_counter_ns()
            fn()
            times[name].append((time.perf_counter_ns() - t0) / 1000)
    p50 = {k: median(v) for k, v in times.items()}
    return {
        "plain_read_p50_us": round(p50["plain"], 2),
        "confined_read_p50_us": round(p50["confined"], 2),
        "confined_read_p99_us": round(percentile(times["confined"], 99), 2),
        "confined_open_overhead_p50_us": round(p50["confined"] - p50["plain"], 2),
    }


def main() -> None:
    import anyio

    from bench._security_load import measure_ps_under_load

    with tempfile.TemporaryDirectory(prefix="aios-bench-security-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ["AIOS_HOME"] = str(tmp / "home")
        escapes = anyio.run(_escapes, tmp / "world")
        overhead = _overhead(tmp)
    load = measure_ps_under_load(clients=32, pollers=4, seconds=LOAD_SECONDS)
    metrics = {
        "escape_attempts": escapes["escape_attempts"],
        "escapes": escapes["escapes"],
        "confined_open_overhead_p50_us": overhead["confined_open_overhead_p50_us"],
        "ps_p99_ms_under_load": load["ps_p99_ms"],
        "ps_p50_ms_under_load": load["ps_p50_ms"],
        "searches_per_s_under_load": load["searches_per_s"],
        "load_errors": load["errors"],
        "rss_start_mb": load["rss_start_mb"],
        "rss_end_mb": load["rss_end_mb"],
        **{k: v for k, v in escapes.items() if k not in ("escape_attempts", "escapes")},
        **{k: v for k, v in overhead.items() if k != "confined_open_overhead_p50_us"},
    }
    write_result(
        "security",
        params={
            "race_calls_per_kind": RACE_CALLS,
            "overhead_reps": OVERHEAD_REPS,
            "load_clients": 32,
            "load_pollers": 4,
            "load_seconds": LOAD_SECONDS,
            "load_files": load["files"],
            "openat2": __import__("aios.confined", fromlist=["HAVE_OPENAT2"]).HAVE_OPENAT2,
        },
        metrics=metrics,
        baseline={
            "plain_read_p50_us": overhead["plain_read_p50_us"],
            "idle_ps_p50_ms": load["idle_ps_p50_ms"],
            "idle_ps_p99_ms": load["idle_ps_p99_ms"],
        },
        ratio={
            "confined_vs_plain_read": round(
                overhead["confined_read_p50_us"] / max(overhead["plain_read_p50_us"], 1e-9), 2
            ),
            "ps_p99_loaded_vs_idle": round(load["ps_p99_ms"] / max(load["idle_ps_p99_ms"], 1e-9), 2),
        },
        notes=(
            "Escapes: the tests/security corpus plus the race (a separate process flips a granted file and folders "
            "to symlinks out) over the real socket with process tokens. Overhead: interleaved reads, medians of "
            f"{OVERHEAD_REPS}. Load: aios serve in its own process, searchers and pollers in other processes. "
            "Two shared cores with other tenants: timings are noisy; rerun to compare."
        ),
    )


if __name__ == "__main__":
    main()
