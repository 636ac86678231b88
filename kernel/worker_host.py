"""The kernel's side of an agent running in its own OS process (``kernel.worker``).

``locate`` says whether an agent class can run in a worker (it must come from a plugin the plugin manager
loaded: a built-in, an entry point or a plugin file; agents registered programmatically stay in-process).
``run_worker`` starts the worker with one end of a socketpair, hands it its start frame (token, plugin,
limits, Landlock rules), checks its hello, then serves its syscalls through ``Kernel.dispatch`` and
``Kernel.llm_chat`` until it exits, and reaps it: SIGTERM, a grace period, SIGKILL. A worker that dies says
why (exit code, signal, limit) in a ``WorkerDied``.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, TaskGroup
from anyio.abc import Process as OsProcess
from anyio.streams.buffered import BufferedByteReceiveStream

from aios import paths
from aios.api import Agent
from aios.errors import AiosError, UsageError
from aios.plugin_manager import BUILTIN_PLUGINS
from kernel.frames import HEADER_SIZE, FrameError, decode, encode, header_size
from kernel.syscalls import LLMChatRequest
from kernel.unix_streams import socket_stream

if TYPE_CHECKING:
    from kernel.process import Process

#: The kernel (``kernel.kernel.Kernel``), typed loosely: that module imports this one.
Kernel = Any

__all__ = ["AgentFailed", "WorkerDied", "WorkerSpec", "locate", "run_worker", "scratch_dir"]

log = logging.getLogger(__name__)

#: How the kernel starts a worker: ``sys.executable`` with these arguments and the socket's fd.
WORKER_ARGS: tuple[str, ...] = ("-m", "kernel.worker")
#: The source packages a worker may read (the plugin API and what built-in agents import).
_SOURCE_PACKAGES = ("aios", "kernel", "memory", "tools", "plugins")


class WorkerDied(AiosError):
    """The worker ended without saying how (crash, signal, limit) or broke the protocol."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class AgentFailed(AiosError):
    """The agent's ``run`` raised inside its worker."""


@dataclass(frozen=True)
class WorkerSpec:
    """Where a worker finds the agent class, and the plugin files it may read."""

    module: str
    qualname: str
    file: str | None
    own_files: tuple[str, ...]
    builtin: bool


def locate(kernel: Kernel, cls: type[Agent]) -> WorkerSpec | None:
    """How a worker loads ``cls``; None for agents that must stay in-process."""
    cache: dict[type[Agent], WorkerSpec | None] = kernel.__dict__.setdefault("_worker_specs", {})
    if cls in cache:
        return cache[cls]
    spec = _locate(kernel, cls)
    cache[cls] = spec
    return spec


def _locate(kernel: Kernel, cls: type[Agent]) -> WorkerSpec | None:
    from kernel.client import ExternalAgent

    if issubclass(cls, ExternalAgent) or "<locals>" in cls.__qualname__:
        return None
    pm = kernel.plugins.pm
    sources = getattr(kernel.plugins, "sources", {})  # plugin name -> PluginSource (builtin, entry point, ...)
    for impl in pm.hook.register_agents.get_hookimpls():
        name, plugin = impl.plugin_name, impl.plugin
        source = sources.get(name)
        kind = source.kind if source is not None else ("builtin" if name in BUILTIN_PLUGINS else "registered")
        builtin = kind == "builtin"
        if kind not in ("builtin", "entry point", "file"):
            continue  # registered by code in the kernel's own process (tests, embedding): trusted, in-process
        try:
            returned: Any = impl.function()
            classes = list(returned or ())
        except Exception:
            continue
        if cls not in classes:
            continue
        module_file = getattr(plugin, "__file__", None)
        importable = cls.__module__ in sys.modules and _worker_imports(cls.__module__)
        if importable:
            file = None
            found = getattr(sys.modules[cls.__module__], "__file__", None) or module_file
        elif getattr(plugin, "__name__", None) == cls.__module__ and module_file:
            file = found = module_file
        else:
            return None
        own: tuple[str, ...] = ()
        if found:
            own = (found,) if file or "." not in cls.__module__ else (str(Path(found).parent),)
        return WorkerSpec(cls.__module__, cls.__qualname__, file, own, builtin)
    return None


def _worker_imports(module: str) -> bool:
    """Whether a worker's interpreter (no PYTHONPATH, no user site, none of this process's own sys.path
    additions) finds ``module`` where this process did; one found only through those additions (a plugin put
    on sys.path at run time) is loaded by file instead."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        return False
    if not spec.origin or not os.path.isabs(spec.origin):
        return True
    origin = Path(spec.origin).resolve()
    return any(origin.is_relative_to(entry) for entry in _default_sys_path())


_DEFAULT_SYS_PATH: list[tuple[Path, ...]] = []


def _default_sys_path() -> tuple[Path, ...]:
    """sys.path of a fresh interpreter like the workers' (asked once: .pth files decide part of it)."""
    if not _DEFAULT_SYS_PATH:
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"},
        )
        try:
            entries = [str(p) for p in json.loads(probe.stdout) if p]
        except ValueError:
            entries = [p for p in sys.path if p]
        _DEFAULT_SYS_PATH.append(tuple(Path(p).resolve() for p in entries))
    return _DEFAULT_SYS_PATH[0]


def scratch_dir(kernel: Kernel, pid: int) -> Path:
    return paths.data_dir() / "scratch" / f"{kernel.boot_id[:8]}-{pid}"


@functools.cache
def _python_rules() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(read, execute) paths for the Python installation, its libraries and the source packages."""
    import sysconfig

    read = {sys.base_prefix, sys.prefix + "/lib", sys.exec_prefix + "/lib"}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            read.add(sysconfig.get_paths()[key])
    for package in _SOURCE_PACKAGES:
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            read.add(location)
    # Shared libraries (C extensions link against them) and the loader's cache; no /etc, no /home, no /proc.
    read.update(["/lib", "/lib64", "/usr/lib", "/usr/lib64", "/etc/ld.so.cache", "/usr/share/zoneinfo"])
    return tuple(sorted(read)), (os.path.realpath(sys.executable),)


def _count_tasks() -> int:
    """Tasks (threads) of this uid now: RLIMIT_NPROC counts them all."""
    uid, total = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as status:
                fields = dict(line.split(b":", 1) for line in status if b":" in line)
            if int(fields[b"Uid"].split()[0]) == uid:
                total += int(fields[b"Threads"])
        except (OSError, KeyError, ValueError):
            continue
    return total


def limits_for(kernel: Kernel, cls: type[Agent]) -> dict[str, int]:
    """The config's limits, lowered (never raised) by the agent class's ``limits`` if it has one."""
    cfg = kernel.config.kernel
    limits = {"memory_mb": cfg.worker_memory_mb, "cpu_s": cfg.worker_cpu_s, "nofile": cfg.worker_nofile}
    limits["nproc"] = cfg.worker_nproc
    asked = getattr(cls, "limits", None) or {}
    for key, value in asked.items():
        if key in limits and isinstance(value, int) and value > 0:
            limits[key] = min(limits[key], value) if limits[key] else value
    return limits


class _Connection:
    def __init__(self, kernel: Kernel, proc: Process, stream: ByteStream, limit: int) -> None:
        self.kernel = kernel
        self.proc = proc
        self.stream = stream
        self.reader = BufferedByteReceiveStream(stream)
        self.limit = limit
        self.lock = anyio.Lock()
        self.scopes: dict[int, anyio.CancelScope] = {}

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.stream.send(encode(message))

    async def receive(self) -> dict[str, Any]:
        size = header_size(await self.reader.receive_exactly(HEADER_SIZE), self.limit)
        return decode(await self.reader.receive_exactly(size))

    async def serve(self, tg: TaskGroup) -> dict[str, Any]:
        """Handle the worker's requests until its last frame (``exit``/``failed``), which is returned."""
        kernel, proc = self.kernel, self.proc
        while True:
            message = await self.receive()
            op = message.get("op")
            if op in ("exit", "failed"):
                return message
            if op == "write":
                kernel.write_output(proc, str(message.get("text", "")))
            elif op == "end_turn":
                kernel.end_turn(proc)
            elif op == "cancel":
                scope = self.scopes.get(_int(message.get("of")))
                if scope is not None:
                    scope.cancel()
            elif op in ("call", "chat", "input"):
                rid = _int(message.get("id"))
                if rid <= 0 or rid in self.scopes:
                    raise FrameError(f"request without a fresh id: {rid}")
                self.scopes[rid] = anyio.CancelScope()
                tg.start_soon(self.handle, rid, op, message)
            else:
                raise FrameError(f"unknown op {op!r}")

    async def handle(self, rid: int, op: str, message: dict[str, Any]) -> None:
        kernel, proc = self.kernel, self.proc
        try:
            with self.scopes[rid]:
                try:
                    if op == "call":
                        payload = message.get("payload")
                        if not isinstance(payload, dict):
                            raise FrameError("call payload must be an object")
                        result = await kernel.dispatch(proc, str(message.get("syscall", "")), payload)
                        await self.send({"id": rid, "result": result})
                    elif op == "input":
                        await self.send({"id": rid, "result": await kernel.read_input(proc)})
                    else:
                        request = LLMChatRequest.model_validate(message.get("request"))
                        stream = kernel.llm_chat(proc, request)
                        try:
                            async for piece in stream:
                                await self.send({"id": rid, "piece": piece})
                        finally:
                            await stream.aclose()  # an async generator: the engine request ends with it
                        await self.send({"id": rid, "done": True})
                except AiosError as exc:
                    await self.send({"id": rid, "error": _error_body(exc)})
                except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
                    await self.send({"id": rid, "error": _error_body(AiosError(f"{op}: invalid request: {exc}"))})
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass  # the worker is gone; the serve loop reports how
                except Exception as exc:
                    log.exception("worker request %s of pid %d failed", op, proc.pid)
                    await self.send({"id": rid, "error": _error_body(AiosError(f"internal error: {exc}"))})
        finally:
            self.scopes.pop(rid, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _error_body(exc: AiosError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}


def _clean_up(scratch: Path, log_path: Path) -> None:
    """The scratch dir goes with its process; the worker's log stays only if it says something."""
    shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(OSError):
        if log_path.stat().st_size == 0:
            log_path.unlink()


def _describe_exit(code: int | None, limits: dict[str, int]) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGXCPU:
            return f"CPU time limit exceeded ({limits.get('cpu_s')} s): killed by SIGXCPU"
        if sig == signal.SIGKILL:
            return "killed by SIGKILL (CPU hard limit, out of memory, or killed from outside)"
        return f"killed by {name}"
    return f"worker exited with code {code} without a result"


async def _reap(process: OsProcess, pidfd: int | None, grace: float, *, terminate: bool) -> int | None:
    """Wait for the worker to end; SIGTERM it (if asked, or if it lingers), then SIGKILL after ``grace``.
    Whatever it forked (its session's process group) is killed with it."""
    code: int | None = None
    with anyio.CancelScope(shield=True):
        code = await _wait_or_kill(process, pidfd, grace, terminate=terminate)
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # it led its own session (start_new_session)
    return code


def _signal(process: OsProcess, pidfd: int | None, sig: int) -> None:
    """Signal the worker through its pidfd: never a reused pid, and, unlike ``Popen.send_signal``, no
    ``waitpid`` that would reap it behind asyncio's child watcher (which then reports exit code 255)."""
    with contextlib.suppress(ProcessLookupError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        elif process.returncode is None:
            os.kill(process.pid, sig)


async def _wait_or_kill(process: OsProcess, pidfd: int | None, grace: float, *, terminate: bool) -> int | None:
    if not terminate:
        with anyio.move_on_after(grace):
            return await process.wait()
    for sig in (signal.SIGTERM, signal.SIGCONT):  # a stopped (suspended) worker must run to die
        _signal(process, pidfd, sig)
    with anyio.move_on_after(grace):
        return await process.wait()
    _signal(process, pidfd, signal.SIGKILL)
    code: int = await process.wait()
    return code


async def run_worker(
    kernel: Kernel, proc: Process, cls: type[Agent], spec: WorkerSpec, *, token: str, confine: bool
) -> str | None:
    """Run ``proc``'s agent in its own process (confined unless ``confine`` is false) with ``token``, the one
    minted for it at spawn; its result. Raises AgentFailed or WorkerDied."""
    cfg = kernel.config.kernel
    scratch = scratch_dir(kernel, proc.pid)
    scratch.mkdir(parents=True, mode=0o700, exist_ok=True)
    logs = paths.logs_dir() / "workers"
    logs.mkdir(parents=True, mode=0o700, exist_ok=True)
    limits = limits_for(kernel, cls)
    if limits.get("nproc") and os.getuid() != 0:  # root's workers may not fork at all (seccomp)
        limits["nproc_base"] = await anyio.to_thread.run_sync(_count_tasks)
    python_read, execute = _python_rules()
    read = [*python_read, *spec.own_files]
    start = {
        "op": "start",
        "pid": proc.pid,
        "agent": proc.agent,
        "goal": proc.goal,
        "interactive": proc.interactive,
        "token": token,
        "module": spec.module,
        "qualname": spec.qualname,
        "file": spec.file,
        "confine": confine,
        "limits": limits,
        "rules": {
            "read": read,
            "execute": list(execute),
            "write": [str(scratch), "/dev/null"],
            "network": proc.caps.network,
        },
    }
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(scratch)),
        "TMPDIR": str(scratch),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "AIOS_HOME": os.environ.get("AIOS_HOME", ""),
    }
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    log_path = logs / f"{kernel.boot_id[:8]}-{proc.pid}.log"
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = await anyio.open_process(
            [sys.executable, *WORKER_ARGS, str(child.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            cwd=str(scratch),
            env=env,
            pass_fds=(child.fileno(),),
            start_new_session=True,
        )
    except BaseException:
        parent.close()
        raise
    finally:
        child.close()
        os.close(log_fd)
    proc.os_pid = process.pid
    proc.confinement = "starting"
    pidfd: int | None = None
    with contextlib.suppress(OSError, AttributeError):  # Linux >= 5.3
        pidfd = os.pidfd_open(process.pid)
    stream = await socket_stream(parent)
    conn = _Connection(kernel, proc, stream, max(kernel.config.access.max_request_kb * 1024, 1 << 20))
    last: dict[str, Any] | None = None
    refused: str | None = None
    terminate = True
    try:
        async with anyio.create_task_group() as tg:
            try:
                await conn.send(start)
                with anyio.fail_after(cfg.worker_start_timeout_s):
                    hello = await conn.receive()
                if hello.get("op") == "failed":
                    last = hello
                elif hello.get("op") != "hello" or not hmac.compare_digest(str(hello.get("token", "")), token):
                    refused = "refused: its hello did not carry its own token"
                else:
                    proc.confinement = str(hello.get("confinement", ""))
                    proc.ready_at = time.time()
                    await conn.send({"op": "welcome"})
                    last = await conn.serve(tg)
                    terminate = False
            except TimeoutError:
                refused = f"refused: no hello within {cfg.worker_start_timeout_s} s"
            except FrameError as exc:
                refused = f"refused: {exc}"
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
                terminate = False  # the worker died (or is dying): its exit status says how
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
            code = await _reap(process, pidfd, cfg.worker_kill_grace_s, terminate=terminate)
            proc.os_exit = code
            if pidfd is not None:
                os.close(pidfd)
            await anyio.to_thread.run_sync(_clean_up, scratch, log_path)
    if refused:
        kernel.audit_process(proc, "proc.worker", f"os-pid:{process.pid}", "deny", reason=refused)
        raise WorkerDied(refused, 1)
    if last is not None and last.get("op") == "exit":
        result = last.get("result")
        return None if result is None else str(result)
    if last is not None:
        raise AgentFailed(str(last.get("error", "failed")))
    reason = _describe_exit(code, limits)
    raise WorkerDied(reason, 128 - code if code is not None and code < 0 else (code or 1))


@dataclass(frozen=True)
class WorkerRun:
    """How ``spawn`` decided to run one agent out of the kernel's process."""

    cls: type[Agent]
    spec: WorkerSpec
    token: str
    confine: bool


_LOGGED_MISSING: list[bool] = []


def plan(kernel: Kernel, cls: type[Agent], *, unconfined: bool) -> tuple[WorkerSpec | None, bool]:
    """(where the worker finds the agent, whether Landlock confines it); (None, False) to run in-process.

    Built-in agents run confined unless ``[kernel] inprocess_builtin``; plugin agents always run in their own
    process, confined unless the user asked for ``unconfined``. Where Landlock is missing the kernel says so
    once; built-ins then run in-process and a plugin agent refuses to start without ``unconfined``.
    """
    from aios.landlock import abi_version, confinement_level

    spec = locate(kernel, cls)
    if spec is None or (spec.builtin and kernel.config.kernel.inprocess_builtin):
        return None, False
    unconfined = unconfined or kernel.config.kernel.unconfined
    if unconfined:
        return spec, False
    if abi_version() > 0:
        return spec, True
    if not _LOGGED_MISSING:
        _LOGGED_MISSING.append(True)
        log.warning("agents are not confined by the OS: %s", confinement_level(0))
    if spec.builtin:
        return None, False
    raise UsageError(
        f"agent {cls.manifest.name!r} is a plugin and cannot be confined here ({confinement_level(0)})",
        "run it with --unconfined (or [kernel] unconfined = true) if you trust it",
    )
