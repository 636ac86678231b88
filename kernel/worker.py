"""An agent's own OS process: ``python -m kernel.worker FD``, started by the kernel, never by anyone else.

FD is this process's end of a socketpair the kernel made for one agent process. The worker reads its start
frame (who it is, its token, its plugin, its limits and Landlock rules), then, before any plugin code runs,
confines itself irrevocably: resource limits, every Linux capability dropped, ``PR_SET_NO_NEW_PRIVS`` and
the Landlock ruleset. It says hello with its token, waits for the kernel's welcome, imports the plugin and
runs ``Agent.run(ctx, goal)`` with ``ctx`` a client whose every method is a syscall over the socket. Identity
is the connection: the worker holds only its own token and cannot name another process's.

Exit codes: 0 the agent returned, 1 it raised, 3 confinement failed, 4 the kernel refused or vanished.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from types import ModuleType
from typing import Any

from aios import errors
from aios.api import Agent, ChatMessage, LLMHelpers, SyscallContext
from aios.errors import AiosError
from kernel.frames import HEADER_SIZE, MAX_FRAME, decode, encode, header_size, recv_frame_blocking, send_frame_blocking

log = logging.getLogger("kernel.worker")

EXIT_OK, EXIT_FAILED, EXIT_CONFINEMENT, EXIT_REFUSED = 0, 1, 3, 4


def apply_limits(limits: dict[str, int]) -> None:
    """Resource limits for this process and its children (0 or absent: leave that one as it is)."""
    if limits.get("memory_mb"):
        size = int(limits["memory_mb"]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
    if limits.get("cpu_s"):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime) + int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))  # SIGXCPU at soft, SIGKILL at hard
    if limits.get("nofile"):
        resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["nofile"]), int(limits["nofile"])))
    if limits.get("nproc"):
        # RLIMIT_NPROC counts every task of the real uid, so the kernel sends how many run now as a base.
        total = int(limits.get("nproc_base", 0)) + int(limits["nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (total, total))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def confine(start: dict[str, Any]) -> str:
    """Limits, capabilities, Landlock: what this process is confined by, in a word."""
    from aios import landlock

    apply_limits(start.get("limits") or {})
    if not start.get("confine"):
        return "process"
    rules = start["rules"]
    landlock.drop_capabilities()
    # What Landlock has no rules for: forks as root (Linux exempts uid 0 from RLIMIT_NPROC, so no forks at all
    # then) and, without the network capability, every socket but TCP's (UDP, raw, packet) and io_uring.
    no_forks = os.getuid() == 0 and bool((start.get("limits") or {}).get("nproc"))
    no_datagrams = not rules.get("network")
    if no_forks or no_datagrams:
        landlock.restrict_syscalls(processes=no_forks, datagrams=no_datagrams)
    abi = landlock.restrict_self(
        landlock.Rules(
            read=tuple(rules.get("read", ())),
            execute=tuple(rules.get("execute", ())),
            write=tuple(rules.get("write", ())),
            tcp_connect="any" if rules.get("network") else None,
        )
    )
    return f"landlock-{abi}"


def load_agent(module_name: str, file: str | None, qualname: str) -> type[Agent]:
    module: ModuleType
    if file:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Agent)):
        raise TypeError(f"{module_name}.{qualname} is not an Agent class")
    return obj


def _error(data: dict[str, Any]) -> AiosError:
    cls = getattr(errors, str(data.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, AiosError)):
        cls = AiosError
    return cls(str(data.get("message", "kernel error")), data.get("hint"))


class _Channel:
    """Requests to the kernel over the socket; answers are matched to requests by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next = 0
        self._waiting: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    def post(self, message: dict[str, Any]) -> None:
        self._writer.write(encode(message))

    async def flush(self) -> None:
        await self._writer.drain()

    def _open(self, op: str, fields: dict[str, Any]) -> tuple[int, asyncio.Queue[dict[str, Any]]]:
        self._next += 1
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting[self._next] = queue
        self.post({"id": self._next, "op": op, **fields})
        return self._next, queue

    async def request(self, op: str, **fields: Any) -> Any:
        rid, queue = self._open(op, fields)
        try:
            await self._writer.drain()
            answer = await queue.get()
        finally:
            self._waiting.pop(rid, None)
        if "error" in answer:
            raise _error(answer["error"])
        return answer.get("result")

    async def stream(self, op: str, **fields: Any) -> AsyncIterator[str]:
        rid, queue = self._open(op, fields)
        done = False
        try:
            await self._writer.drain()
            while True:
                answer = await queue.get()
                if "error" in answer:
                    done = True
                    raise _error(answer["error"])
                if answer.get("done"):
                    done = True
                    return
                yield str(answer.get("piece", ""))
        finally:
            self._waiting.pop(rid, None)
            if not done:  # the agent stopped reading: the kernel stops generating
                self.post({"op": "cancel", "of": rid})

    async def read_loop(self) -> None:
        try:
            while True:
                size = header_size(await self._reader.readexactly(HEADER_SIZE), MAX_FRAME)
                message = decode(await self._reader.readexactly(size))
                queue = self._waiting.get(int(message.get("id", 0)))
                if queue is not None:
                    queue.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            # The kernel is gone (or spoke garbage): nothing this agent does can reach anyone any more.
            os._exit(EXIT_REFUSED)


class _WorkerLLM(LLMHelpers):
    def __init__(self, channel: _Channel) -> None:
        self._channel = channel

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        ignore_eos: bool = False,
        json_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[str]:
        request = {
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
            "stop": list(stop),
            "ignore_eos": ignore_eos,
            "json_schema": json_schema,
        }
        return self._channel.stream("chat", request=request)


class WorkerContext(SyscallContext):
    """``aios.Context`` in a worker: every method is a syscall over the socket to the kernel (the facades,
    ``spawn``, ``wait``, ``kill`` and ``ask_user`` come from ``SyscallContext``, as in-process)."""

    def __init__(self, channel: _Channel, start: dict[str, Any]) -> None:
        self._channel = channel
        self._pid = int(start["pid"])
        self._name = str(start["agent"])
        self._interactive = bool(start["interactive"])
        self._llm = _WorkerLLM(channel)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def name(self) -> str:
        return self._name

    @property
    def interactive(self) -> bool:
        return self._interactive

    @property
    def llm(self) -> _WorkerLLM:
        return self._llm

    async def write(self, text: str) -> None:
        if text:
            self._channel.post({"op": "write", "text": str(text)})
            await self._channel.flush()

    async def end_turn(self) -> None:
        self._channel.post({"op": "end_turn"})
        await self._channel.flush()

    async def input(self) -> str | None:
        result = await self._channel.request("input")
        return None if result is None else str(result)

    async def call(self, syscall: str, **payload: Any) -> Any:
        return await self._channel.request("call", syscall=syscall, payload=payload)


async def _serve(sock: socket.socket, agent_cls: type[Agent], start: dict[str, Any]) -> int:
    sock.setblocking(False)
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME)
    channel = _Channel(reader, writer)
    reading = asyncio.create_task(channel.read_loop())
    ctx = WorkerContext(channel, start)
    try:
        result = await agent_cls().run(ctx, str(start.get("goal", "")))
    except BaseException as exc:  # MemoryError and SystemExit included: the kernel must hear why
        channel.post({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
        code = EXIT_FAILED
    else:
        channel.post({"op": "exit", "result": None if result is None else str(result)})
        code = EXIT_OK
    with contextlib.suppress(ConnectionError):
        await channel.flush()
    reading.cancel()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        sys.stderr.write("kernel.worker is started by the aios kernel, not by hand\n")
        return 2
    sock = socket.socket(fileno=int(args[0]))
    try:
        start = recv_frame_blocking(sock)
        if start.get("op") != "start":
            return EXIT_REFUSED
    except (EOFError, OSError, ValueError):
        return EXIT_REFUSED
    try:
        confinement = confine(start)
    except Exception as exc:
        send_frame_blocking(sock, {"op": "failed", "error": f"confinement failed: {type(exc).__name__}: {exc}"})
        return EXIT_CONFINEMENT
    try:
        send_frame_blocking(sock, {"op": "hello", "token": start.get("token"), "confinement": confinement})
        if recv_frame_blocking(sock).get("op") != "welcome":
            return EXIT_REFUSED
    except (EOFError, OSError, ValueError):
        return EXIT_REFUSED
    try:
        agent_cls = load_agent(str(start["module"]), start.get("file"), str(start["qualname"]))
    except BaseException as exc:
        send_frame_blocking(sock, {"op": "failed", "error": f"cannot load the agent: {type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    return asyncio.run(_serve(sock, agent_cls, start))


if __name__ == "__main__":
    sys.exit(main())
