"""Agents in their own confined OS processes: escapes, spawn latency, syscall round trip, throughput cost.

1. **Escapes.** A kernel (FakeBackend) served on its real socket, with the hostile test plugin installed as a
   one-file plugin (tests/security/hostile_plugin). Each attempt runs in a fresh confined worker: reads and
   writes outside its grants (system files, the kernel's SQLite files, config and plugin dirs, the token file,
   another agent's scratch dir, /proc of the kernel), symlinks, hard links and renames out of its scratch dir,
   exec of binaries outside the interpreter, a copied interpreter and a memfd, TCP connect and bind, abstract
   and pathname Unix sockets, signals to the kernel and to another worker, ptrace and process_vm_readv, a
   capability probe, and memory, CPU, fork and file-descriptor exhaustion. An escape is an attempt that did
   what it tried (the agent reports it), or any file outside that changed.
2. **Spawn latency.** From ``Kernel.spawn`` to the worker's hello (started, confined, about to import its
   plugin), over every attempt's worker.
3. **Syscall round trip.** ``proc.self`` timed inside a confined agent (``pinger``), against the same agent
   in-process.
4. **What ``inprocess_builtin`` saves.** The built-in ``chat`` agent answering one short goal, spawn to exit,
   confined against in-process (``[kernel] inprocess_builtin = true``).
5. **Throughput.** 8 agents streaming tokens at once, confined against in-process, on the FakeBackend paced
   like the bundled model on this machine (``TOKEN_DELAY_S`` per decode step of up to 8 sequences).

    python -m bench confinement
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from bench._results import median, percentile, write_result

PLUGIN = Path(__file__).resolve().parent.parent / "tests" / "security" / "hostile_plugin" / "aios_hostile.py"
PINGS = 500
STREAM_TOKENS = int(os.environ.get("AIOS_BENCH_STREAM_TOKENS", "128"))
TOKEN_DELAY_S = float(os.environ.get("AIOS_BENCH_TOKEN_DELAY_S", "0.05"))
AGENTS = 8
REPS = 2
CHAT_RUNS = 10


def _attempts(kernel: Any, tmp: Path, ports: dict[str, Any], victim: int) -> list[tuple[str, str, Any]]:
    from aios import paths
    from kernel.worker_host import scratch_dir

    kpid = os.getpid()
    secret = tmp / "outside" / "secret.txt"
    db = paths.db_path()
    other = scratch_dir(kernel, 9999)
    token = ports["token_file"]
    reads = [
        "/etc/passwd",
        "/etc/shadow",
        "/etc/hostname",
        "/root/.bashrc",
        "/root/.profile",
        str(secret),
        str(db),
        f"{db}-wal",
        f"{db}-shm",
        str(paths.config_path()),
        str(token),
        str(other / "notes.txt"),
        f"/proc/{kpid}/environ",
        f"/proc/{kpid}/maps",
        f"/proc/{kpid}/cmdline",
        "/proc/1/environ",
        "/sys/kernel/mm/transparent_hugepage/enabled",
    ]
    attempts: list[tuple[str, str, Any]] = [(f"read {p}", "read", p) for p in reads if os.path.exists(p)]
    for path in (f"/proc/{kpid}/mem", "/dev/mem", "/dev/kmsg"):
        if os.path.exists(path):
            attempts.append((f"open {path}", "open", path))
    for folder in ("/", "/root", str(paths.data_dir()), str(other), "/tmp", "/home"):
        if os.path.isdir(folder):
            attempts.append((f"listdir {folder}", "listdir", folder))
    probe = f"aios-escape-probe-{os.getpid()}"
    for path in (
        str(secret),
        str(db),
        str(paths.data_dir() / probe),
        str(paths.plugins_dir() / f"{probe}.py"),
        str(Path(__file__).resolve().parent.parent / "aios" / f"{probe}.py"),
        f"/tmp/{probe}",
        str(other / probe),
    ):
        attempts.append((f"write {path}", "write", path))
    attempts += [
        ("symlink to a secret", "symlink", str(secret)),
        ("symlink to the kernel DB", "symlink", str(db)),
        ("hardlink to a secret", "hardlink", str(secret)),
        ("hardlink to the kernel DB", "hardlink", str(db)),
        ("rename into another scratch dir", "rename_out", str(other)),
        ("rename into the data dir", "rename_out", str(paths.data_dir())),
        ("exec /bin/sh", "exec", ["/bin/sh", "-c", "true"]),
        ("exec /usr/bin/env", "exec", ["/usr/bin/env"]),
        ("os.system", "system", "true"),
        ("exec a copy of the interpreter", "exec_copy", None),
        ("exec from a memfd", "memfd_exec", None),
        ("TCP connect to a local listener", "tcp_connect", ports["tcp"]),
        ("TCP bind", "tcp_bind", 0),
        ("UDP datagram to a local port", "udp_send", ports["udp"]),
        ("raw IP socket", "raw_socket", "raw"),
        ("packet socket", "raw_socket", "packet"),
        ("io_uring", "io_uring", None),
        ("abstract Unix socket outside", "abstract_connect", ports["abstract"]),
        ("kernel socket without a token", "unix_http", str(ports["unix"])),
        ("SIGTERM the kernel", "kill", {"pid": kpid, "sig": 15}),
        ("SIGKILL the kernel", "kill", {"pid": kpid, "sig": 9}),
        ("probe the kernel with signal 0", "kill", {"pid": kpid, "sig": 0}),
        ("SIGKILL another agent's worker", "kill", {"pid": victim, "sig": 9}),
        ("probe pid 1 with signal 0", "kill", {"pid": 1, "sig": 0}),
        ("ptrace the kernel", "ptrace", kpid),
        ("process_vm_readv the kernel", "vm_read", kpid),
        ("chown (a capability)", "chown", None),
        ("a secret in the kernel's environment", "environ", SECRET),
        ("files or sockets inherited from the kernel", "inherited_fds", None),
        ("allocate past the memory limit", "memory", 1024),
        ("busy loop past the CPU limit", "cpu", 120),
        ("fork loop", "fork_loop", 500),
        ("open files past the limit", "fd_exhaust", 1000),
    ]
    if os.path.exists("/usr/bin/python3") and os.path.realpath("/usr/bin/python3") != os.path.realpath(sys.executable):
        attempts.append(("exec another python", "exec", ["/usr/bin/python3", "-c", "pass"]))
    return attempts


#: Put in the kernel's environment for the run; no agent may see it.
SECRET = "sk-bench-kernel-secret"


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    seen: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                if "scratch" in path.split(os.sep)[-3:-1]:
                    continue
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                seen[path] = (st.st_size, st.st_mtime_ns)
    return seen


async def _confined(tmp: Path) -> dict[str, Any]:
    from aios import paths
    from aios.config import Config
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel
    from kernel.backends.fake import FakeBackend
    from kernel.server import serve_socket
    from kernel.worker_host import scratch_dir

    (tmp / "outside").mkdir()
    (tmp / "outside" / "secret.txt").write_text("the secret\n")
    paths.plugins_dir().mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN, paths.plugins_dir() / PLUGIN.name)
    paths.config_path().write_text("# bench\n")
    PluginManager(load_entry_points=False).approve("aios_hostile")  # as the user would, on its first run
    out: dict[str, Any] = {}
    with (
        socket.socket() as listener,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as abstract,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
    ):
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        abstract_name = f"aios-bench-{os.getpid()}"
        abstract.bind("\0" + abstract_name)
        abstract.listen()
        async with (
            open_kernel(Config(), runtime=FakeBackend(), plugins=PluginManager(load_entry_points=False)) as kernel,
            serve_socket(kernel, tmp / "run" / "kernel.sock") as (sock_path, _),
        ):
            other = scratch_dir(kernel, 9999)
            other.mkdir(parents=True)
            (other / "notes.txt").write_text("another agent's notes")
            kernel.flush_writes()
            victim = await kernel.spawn("hostile", json.dumps({"attack": "sleep", "arg": 600}))
            while kernel.info(victim)["confinement"] in ("in-process", "starting"):
                await anyio.sleep(0.01)
            ports = {
                "tcp": listener.getsockname()[1],
                "udp": udp.getsockname()[1],
                "abstract": abstract_name,
                "unix": sock_path,
                "token_file": sock_path.parent / "frontend.token",
            }
            attempts = _attempts(kernel, tmp, ports, kernel.info(victim)["os_pid"])
            # The source tree is edited by people while this runs: only the probe written there is looked for.
            source_probe = Path(__file__).resolve().parent.parent / "aios" / f"aios-escape-probe-{os.getpid()}.py"
            watched = (tmp / "outside", paths.data_dir(), paths.config_dir())
            before = _snapshot(*watched)
            escapes: list[str] = []
            spawn_ms: list[float] = []
            for label, attack, arg in attempts:
                with anyio.fail_after(120):
                    pid = await kernel.spawn("hostile", json.dumps({"attack": attack, "arg": arg}))
                    info = await kernel.wait(pid)
                proc = kernel.process(pid)
                if proc.ready_at is not None:
                    spawn_ms.append((proc.ready_at - proc.created_at) * 1000)
                outcome = json.loads(info["result"]) if info["result"] else None
                if outcome is not None and outcome["escaped"]:
                    escapes.append(f"{label}: {outcome['detail']}")
                elif outcome is None and info["state"] != "failed":
                    escapes.append(f"{label}: ended without an outcome ({info['state']})")
            kernel.flush_writes()
            changed = {p for p, v in _snapshot(*watched).items() if before.get(p) != v}
            changed -= {str(paths.db_path()), f"{paths.db_path()}-wal", f"{paths.db_path()}-shm"}
            changed = {p for p in changed if "/logs/" not in p}
            escapes += [f"changed outside: {p}" for p in sorted(changed)]
            if source_probe.exists():
                escapes.append(f"wrote into the source tree: {source_probe}")
                source_probe.unlink()
            try:
                escapes.append(f"a datagram arrived: {udp.recv(64)!r}")
            except BlockingIOError:
                pass
            victim_alive = kernel.info(victim)["state"] not in ("exited", "failed")
            if not victim_alive:
                escapes.append("another agent's worker was killed")
            await kernel.kill(victim)
            for probe in Path("/tmp").glob(f"aios-escape-probe-{os.getpid()}*"):
                probe.unlink()
            out.update(
                attempts=len(attempts),
                escapes=escapes,
                spawn_ms=spawn_ms,
                kernel_alive=True,
            )
            out["chat_ms"] = await _chat_runs(kernel)
            out["rtt_ms"] = await _pings(kernel)
            out["tok_s"] = [await _stream(kernel) for _ in range(REPS)]
    return out


async def _chat_runs(kernel: Any) -> list[float]:
    """Milliseconds from spawn to exit of the built-in ``chat`` agent answering one short goal."""
    times = []
    for _ in range(CHAT_RUNS):
        with anyio.fail_after(120):
            start = time.perf_counter()
            pid = await kernel.spawn("chat", "hi", interactive=False)
            await kernel.wait(pid)
            times.append((time.perf_counter() - start) * 1000)
    return times


async def _pings(kernel: Any) -> list[float]:
    with anyio.fail_after(120):
        pid = await kernel.spawn("pinger", str(PINGS))
        info = await kernel.wait(pid)
    times: list[float] = json.loads(info["result"])
    return times[10:]  # the first calls warm imports up


async def _stream(kernel: Any) -> float:
    """Aggregate tokens/s of ``AGENTS`` streaming at once, over the window from the first agent's request to
    the last agent's last token, all starting at the same moment (spawn latency is measured on its own)."""
    with anyio.fail_after(600):
        pids = [await kernel.spawn("streamer", interactive=True) for _ in range(AGENTS)]
        while any(kernel.info(pid)["state"] != "waiting_input" for pid in pids):  # every one up and waiting
            await anyio.sleep(0.01)
        for pid in pids:
            await kernel.send(pid, str(STREAM_TOKENS))
        runs = [json.loads((await kernel.wait(pid))["result"]) for pid in pids]
    window = max(r["end"] for r in runs) - min(r["start"] for r in runs)
    return sum(r["pieces"] for r in runs) / window


async def _inprocess(tmp: Path) -> dict[str, Any]:
    """The same agents registered programmatically: they run inside the kernel's process."""
    import importlib.util

    from aios.config import Config
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel
    from kernel.backends.fake import FakeBackend

    spec = importlib.util.spec_from_file_location("aios_hostile_inproc", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    manager = PluginManager(load_entry_points=False, plugins_dir=tmp / "none")
    manager.register(module, name="bench-inprocess")
    config = Config()
    config.kernel.inprocess_builtin = True  # the switch that keeps trusted built-ins in the kernel
    async with open_kernel(config, runtime=FakeBackend(), plugins=manager) as kernel:
        chat_ms = await _chat_runs(kernel)
        rtt_ms = await _pings(kernel)
        return {"chat_ms": chat_ms, "rtt_ms": rtt_ms, "tok_s": [await _stream(kernel) for _ in range(REPS)]}


async def _run_stream_pair(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both kernels one after the other, then the throughput runs again in the other order (load drifts)."""
    confined = await _confined(tmp / "confined")
    inproc = await _inprocess(tmp / "inproc")
    inproc["tok_s"] += (await _inprocess(tmp / "inproc2"))["tok_s"]
    confined["tok_s"] += await _streams_only(tmp / "confined2")
    return confined, inproc


async def _streams_only(tmp: Path) -> list[float]:
    from aios.config import Config
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel
    from kernel.backends.fake import FakeBackend

    async with open_kernel(Config(), runtime=FakeBackend(), plugins=PluginManager(load_entry_points=False)) as kernel:
        return [await _stream(kernel) for _ in range(REPS)]


def _long_reply(messages: Any) -> str:
    """The streamers' endless reply ("go"); the built-in chat's echo otherwise."""
    from kernel.backends.fake import echo_script

    last = messages[-1]["content"] if messages else ""
    return "token " * (STREAM_TOKENS + 64) if last == "go" else echo_script(messages)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="aios-bench-confine-") as name:
        tmp = Path(name)
        os.environ["AIOS_HOME"] = str(tmp / "home")
        os.environ["AIOS_OPENAI_API_KEY"] = SECRET
        (tmp / "confined").mkdir()
        for sub in ("inproc", "inproc2", "confined2"):
            (tmp / sub).mkdir()
        import kernel.backends.fake as fake

        original = fake.FakeBackend.__init__

        def paced(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("token_delay", TOKEN_DELAY_S)
            kwargs.setdefault("script", _long_reply)
            original(self, *args, **kwargs)

        fake.FakeBackend.__init__ = paced  # type: ignore[method-assign]
        try:
            confined, inproc = anyio.run(_run_stream_pair, tmp)
        finally:
            fake.FakeBackend.__init__ = original  # type: ignore[method-assign]
    confined_tok_s = median(confined["tok_s"])
    inproc_tok_s = median(inproc["tok_s"])
    write_result(
        "confinement",
        params={
            "escape_attempts": confined["attempts"],
            "pings": PINGS,
            "agents": AGENTS,
            "stream_tokens": STREAM_TOKENS,
            "token_delay_s": TOKEN_DELAY_S,
            "reps": REPS,
            "backend": "fake (paced per decode step)",
        },
        metrics={
            "escapes": len(confined["escapes"]),
            "escape_attempts": confined["attempts"],
            "escaped": confined["escapes"],
            "spawn_p50_ms": round(median(confined["spawn_ms"]), 2),
            "spawn_p99_ms": round(percentile(confined["spawn_ms"], 99), 2),
            "syscall_rtt_p50_ms": round(median(confined["rtt_ms"]), 3),
            "syscall_rtt_p99_ms": round(percentile(confined["rtt_ms"], 99), 3),
            "confined_tok_s_n8": round(confined_tok_s, 1),
            "builtin_chat_confined_p50_ms": round(median(confined["chat_ms"]), 1),
        },
        baseline={
            "inproc_syscall_p50_ms": round(median(inproc["rtt_ms"]), 4),
            "inproc_tok_s_n8": round(inproc_tok_s, 1),
            "builtin_chat_inprocess_p50_ms": round(median(inproc["chat_ms"]), 1),
        },
        ratio={
            "confined_over_inproc_tok_s_n8": round(confined_tok_s / inproc_tok_s, 3),
            "builtin_chat_confined_over_inprocess": round(median(confined["chat_ms"]) / median(inproc["chat_ms"]), 2),
        },
        notes="every escape attempt runs in its own fresh worker; spawn latency is spawn() to the worker's hello",
    )


if __name__ == "__main__":
    main()
