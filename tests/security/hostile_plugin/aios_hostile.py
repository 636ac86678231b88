"""A hostile aios plugin, installed as a real one-file plugin (the config dir's ``plugins/`` folder).

``hostile`` runs one escape attempt named by its goal (JSON: ``{"attack": NAME, "arg": ...}``) and returns
JSON ``{"attack", "escaped", "detail"}``: ``escaped`` is true when the attempt did what it tried to do. The
resource attacks (``memory``, ``cpu``, ``fork_loop``, ``fd_exhaust``) either fail inside the agent or get
it killed by its limits. ``calm`` is a well-behaved agent: it makes a syscall and a short LLM call, to show
the kernel keeps serving others while ``hostile`` misbehaves.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.hookspecs import hookimpl


def _try(fn: Any) -> tuple[bool, str]:
    try:
        detail = fn()
    except (OSError, MemoryError, subprocess.SubprocessError, ValueError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, str(detail)[:200]


def _read(path: str) -> Any:
    with open(path, "rb") as f:
        return f.read(64)


def _open(path: str) -> Any:
    os.close(os.open(path, os.O_RDONLY))
    return "opened"


def _write(path: str) -> Any:
    with open(path, "ab") as f:
        f.write(b"pwned\n")
    return "wrote"


def _scratch(name: str) -> str:
    return os.path.join(os.getcwd(), name)


def _symlink(target: str) -> Any:
    link = _scratch(f"link-{abs(hash(target))}")
    if not os.path.lexists(link):
        os.symlink(target, link)
    return _read(link)


def _hardlink(target: str) -> Any:
    link = _scratch(f"hard-{abs(hash(target))}")
    os.link(target, link)
    return _read(link)


def _rename_out(target_dir: str) -> Any:
    mine = _scratch("payload")
    with open(mine, "wb") as f:
        f.write(b"x")
    os.rename(mine, os.path.join(target_dir, "payload-from-agent"))
    return "renamed"


def _exec(argv: list[str]) -> Any:
    done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    if done.returncode != 0:
        raise OSError(f"exit {done.returncode}: {done.stderr[-200:]!r}")
    return done.stdout[:64]


def _system(cmd: str) -> Any:
    status = os.system(cmd)
    if status != 0:
        raise OSError(f"os.system returned {status}")
    return "ran"


def _exec_copy() -> Any:
    """Copy the (readable, executable) interpreter into the scratch dir and run the copy."""
    copy = _scratch("py-copy")
    with open(os.path.realpath(sys.executable), "rb") as src, open(copy, "wb") as dst:
        dst.write(src.read())
    os.chmod(copy, 0o700)
    return _exec([copy, "-c", "pass"])


def _memfd_exec() -> Any:
    fd = os.memfd_create("x", 0)
    with open(os.path.realpath(sys.executable), "rb") as src:
        os.write(fd, src.read())
    pid = os.fork()
    if pid == 0:
        try:
            os.execve(fd, [sys.executable, "-c", "pass"], {})
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"fexecve failed (status {status})")
    return "executed from a memfd"


def _tcp_connect(port: int) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        return f"connected to {s.getpeername()}"


def _udp_send(port: int) -> Any:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"exfiltrated", ("127.0.0.1", port))
        return "sent a datagram"


def _raw_socket(family: str) -> Any:
    kinds = {"raw": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), "packet": (17, socket.SOCK_RAW, 0)}
    with socket.socket(*kinds[family]):
        return f"opened a {family} socket"


def _io_uring() -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)  # io_uring_setup: could open sockets past the socket() filter
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    os.close(fd)
    return "set up an io_uring"


def _tcp_bind(port: int) -> Any:
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        return f"listening on {s.getsockname()}"


def _abstract_connect(name: str) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect("\0" + name)
        return "connected to an abstract socket outside the sandbox"


def _unix_http(path: str) -> Any:
    """Talk to the kernel's own socket without a token: the kernel, not the OS, must refuse."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(b"GET /v1/ps HTTP/1.1\r\nHost: aios\r\n\r\n")
        head = s.recv(64)
    if b" 200 " not in head:
        raise OSError(f"refused by the kernel: {head[:32]!r}")
    return "listed processes"


def _kill(args: dict[str, int]) -> Any:
    os.kill(int(args["pid"]), int(args.get("sig", 15)))
    return "signal delivered"


def _ptrace(pid: int) -> Any:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) != 0:  # PTRACE_ATTACH
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
    return "attached"


def _vm_read(pid: int) -> Any:
    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(16)
    local = IoVec(ctypes.cast(buf, ctypes.c_void_p), 16)
    remote = IoVec(0x400000, 16)
    if libc.process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return "read the kernel's memory"


def _chown() -> Any:
    mine = _scratch("owned")
    open(mine, "wb").close()
    os.chown(mine, 12345, 12345)
    return "changed owner (a capability survived)"


def _memory(mb: int) -> Any:
    block = bytearray(mb * 2**20)
    return f"allocated {len(block)} bytes"


def _cpu(seconds: float) -> Any:
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return f"spun for {seconds} s"


def _environ(secret: str) -> Any:
    leaked = [name for name, value in os.environ.items() if secret in value]
    if not leaked:
        raise OSError(f"no environment variable holds it ({len(os.environ)} inherited)")
    return f"found in {leaked}"


def _inherited_fds() -> Any:
    """A file, a folder or a named or network socket the kernel left open in this process. The worker's own
    descriptors (its unnamed socketpair, asyncio's self-pipe and epoll) are not."""
    import stat

    leaked = []
    for fd in range(3, 1024):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode):
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.family != socket.AF_UNIX or sock.getsockname():
                    leaked.append((fd, sock.family.name, sock.getsockname()))
        elif stat.S_IFMT(mode):  # a file, folder, FIFO or device (anonymous inodes have no type bits)
            leaked.append((fd, stat.filemode(mode)))
    if not leaked:
        raise OSError("nothing inherited but the worker's own unnamed sockets")
    return f"inherited {leaked}"


def _ignore_sigterm(seconds: float) -> Any:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    open(_scratch("ignoring-sigterm"), "w").close()  # the test waits for this
    time.sleep(seconds)
    return "outlived a kill"


def _crash(how: str) -> Any:
    if how == "exit":
        os._exit(3)
    ctypes.string_at(0)  # SIGSEGV
    return "still here"


def _sleep(seconds: float) -> Any:
    time.sleep(seconds)
    return "slept"


def _fork_loop(most: int) -> Any:
    children = []
    try:
        for _ in range(most):
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
    return f"forked {most} processes"


def _fd_exhaust(most: int) -> Any:
    fds = []
    try:
        for _ in range(most):
            fds.append(os.open("/dev/null", os.O_RDONLY))
    finally:
        for fd in fds:
            os.close(fd)
    return f"opened {most} files"


ATTACKS: dict[str, Any] = {
    "read": _read,
    "open": _open,
    "write": _write,
    "listdir": os.listdir,
    "symlink": _symlink,
    "hardlink": _hardlink,
    "rename_out": _rename_out,
    "exec": _exec,
    "system": _system,
    "exec_copy": lambda arg: _exec_copy(),
    "memfd_exec": lambda arg: _memfd_exec(),
    "tcp_connect": _tcp_connect,
    "tcp_bind": _tcp_bind,
    "udp_send": _udp_send,
    "raw_socket": _raw_socket,
    "io_uring": lambda arg: _io_uring(),
    "abstract_connect": _abstract_connect,
    "unix_http": _unix_http,
    "kill": _kill,
    "ptrace": _ptrace,
    "vm_read": _vm_read,
    "chown": lambda arg: _chown(),
    "memory": _memory,
    "cpu": _cpu,
    "sleep": _sleep,
    "ignore_sigterm": _ignore_sigterm,
    "crash": _crash,
    "environ": _environ,
    "inherited_fds": lambda arg: _inherited_fds(),
    "fork_loop": _fork_loop,
    "fd_exhaust": _fd_exhaust,
}


class HostileAgent(Agent):
    manifest = Manifest(name="hostile", description="tries to escape its confinement (tests only)")
    #: Lower than the kernel's defaults, so the resource attacks end quickly.
    limits = {"memory_mb": 512, "cpu_s": 2, "nproc": 8, "nofile": 64}

    async def run(self, ctx: Context, goal: str) -> str:
        spec = json.loads(goal)
        escaped, detail = _try(lambda: ATTACKS[spec["attack"]](spec.get("arg")))
        return json.dumps({"attack": spec["attack"], "escaped": escaped, "detail": detail})


class NetworkedAgent(HostileAgent):
    """The same attempts with the ``network`` capability: TCP is then open to it."""

    manifest = Manifest(
        name="networked", description="hostile, with network (tests only)", capabilities=Capabilities(network=True)
    )


class CalmAgent(Agent):
    manifest = Manifest(
        name="calm", description="behaves (tests only)", capabilities=Capabilities(llm_token_budget=10_000)
    )

    async def run(self, ctx: Context, goal: str) -> str:
        me = await ctx.call("proc.self")
        reply = "".join([piece async for piece in ctx.llm.chat([{"role": "user", "content": goal}], max_tokens=8)])
        await ctx.write(reply)
        return json.dumps({"pid": me["pid"], "reply": reply, "os_pid": os.getpid()})


class ParentAgent(Agent):
    """Spawns ``calm`` with its goal and waits for it; JSON: its own OS pid and the child's final row."""

    manifest = Manifest(
        name="parent", description="spawns a child (tests only)", capabilities=Capabilities(max_children=1)
    )

    async def run(self, ctx: Context, goal: str) -> str:
        child = await ctx.spawn("calm", goal)
        return json.dumps({"os_pid": os.getpid(), "child": await ctx.wait(child)})


class PingerAgent(Agent):
    """Times ``int(goal)`` round trips of the cheapest syscall (``proc.self``); their milliseconds as JSON."""

    manifest = Manifest(name="pinger", description="syscall round trips (benchmarks only)")

    async def run(self, ctx: Context, goal: str) -> str:
        times = []
        for _ in range(int(goal)):
            start = time.perf_counter()
            await ctx.call("proc.self")
            times.append((time.perf_counter() - start) * 1000)
        return json.dumps(times)


class StreamerAgent(Agent):
    """Streams ``N`` tokens from the model, ``N`` its goal or, with no goal, the first input it is sent (so that
    agents started one after another stream together); JSON: how many pieces arrived, from when to when."""

    manifest = Manifest(
        name="streamer", description="token streaming (benchmarks only)", capabilities=Capabilities(llm_token_budget=0)
    )

    async def run(self, ctx: Context, goal: str) -> str:
        count = goal or await ctx.input() or "0"
        chat: Any = ctx.llm.chat
        pieces, start = 0, time.time()
        async for _ in chat([{"role": "user", "content": "go"}], max_tokens=int(count), ignore_eos=True):
            pieces += 1
        return json.dumps({"pieces": pieces, "start": start, "end": time.time()})


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [HostileAgent, NetworkedAgent, CalmAgent, ParentAgent, PingerAgent, StreamerAgent]
