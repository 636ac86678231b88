"""Shared rig for the access-control and socket tests: a kernel on the FakeBackend, optionally served on a
real Unix socket, test agents with known manifests, and probe syscalls that touch any resource kind.

``Rig.agent(name)`` spawns a process and returns a caller with ``.call(syscall, **payload)``: in-process
(the process's own ``ProcessContext``) or over the socket (a ``SocketClient`` holding that process's token),
so the same syscall tests run against both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from aios import Agent, Capabilities, Context, Manifest
from aios.client import ExternalAgent, SocketClient
from aios.config import Config
from aios.confined import FileGrant, open_confined
from aios.hookspecs import hookimpl
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.context import ProcessContext
from kernel.kernel import Kernel
from kernel.process import Process
from kernel.server import serve_socket
from kernel.syscalls import SYSCALLS, Access, Request, syscall
from memory.store import Store

Transport = Literal["inproc", "socket"]


class TouchRequest(Request):
    kind: Literal["llm", "file", "memory", "task", "tool", "proc", "net"]
    target: str
    write: bool = False
    args: dict[str, Any] | None = None


class ReadRequest(Request):
    path: str


if "proc.test_touch" not in SYSCALLS:

    @syscall("proc.test_touch", TouchRequest, access=lambda k, p, r: [Access(r.kind, r.target, r.write, r.args)])
    async def _touch(kernel: Kernel, proc: Process, request: TouchRequest) -> dict[str, Any]:
        return {"touched": f"{request.kind}:{request.target}"}

    @syscall("proc.test_read", ReadRequest, access=lambda k, p, r: [Access("file", r.path)])
    async def _read(kernel: Kernel, proc: Process, request: ReadRequest) -> str:
        """Reads a file the way fs.* does: the guard checked the path, the open is confined (no races)."""
        caps = proc.caps
        grants = [FileGrant.of(r) for r in caps.files_read] + [FileGrant.of(r, write=True) for r in caps.files_write]
        with open_confined(grants, request.path) as fd:
            return os.read(fd, 1000).decode()


class Holder(Agent):
    """Stays alive (reading input) until its input is closed, so tests can make calls as it."""

    manifest = Manifest(name="holder", interactive=True)

    async def run(self, ctx: Context, goal: str) -> str | None:
        while await ctx.input() is not None:
            pass
        return "done"


class Sleeper(Agent):
    """Lives until killed (for children, which take no input)."""

    manifest = Manifest(name="sleeper")

    async def run(self, ctx: Context, goal: str) -> str | None:
        await anyio.sleep(3600)
        return None


class Asker(Agent):
    """Calls the tool its goal names (alpha's capabilities), as a real agent's run would."""

    manifest = Manifest(name="asker")

    async def run(self, ctx: Context, goal: str) -> str | None:
        return str(await ctx.call("proc.test_touch", kind="tool", target=goal))


def holder(name: str, caps: Capabilities, base: type[Agent] = Holder) -> type[Agent]:
    manifest = Manifest(name=name, capabilities=caps, interactive=base in (Holder, ExternalAgent))
    return type(f"Agent_{name}", (base,), {"manifest": manifest})


def agent_classes(root: Path) -> list[type[Agent]]:
    return [
        holder(
            "alpha",
            Capabilities(
                llm_token_budget=1000,
                tools=("t.ok", "t.*read"),
                tools_ask=("t.ask*",),
                tools_deny=("t.bad",),
                files_read=(str(root / "granted"),),
                files_write=(str(root / "granted" / "rw"),),
                memory_read=("shared:*",),
                max_children=2,
            ),
        ),
        holder("beta", Capabilities()),
        holder("asker", Capabilities(tools_ask=("t.ask*",)), Asker),
        holder("reader", Capabilities(memory_read=("agent:alpha",))),
        holder("external", Capabilities(tools=("t.ok",)), ExternalAgent),
        holder(
            "filer",
            Capabilities(
                tools=("files.*", "other.*"),
                tool_arg_paths=("files.*",),
                files_read=(str(root / "granted"),),
                files_write=(str(root / "granted" / "rw"),),
            ),
        ),
        holder(
            "greedy",
            Capabilities(tools=("*",), files_read=("/",), files_write=("/",), network=True, max_children=9),
            Sleeper,
        ),
    ]


@dataclass
class Rig:
    kernel: Kernel
    store: Store
    root: Path
    transport: Transport
    socket: Path | None = None
    frontend_token: str | None = None
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)
    portal: BlockingPortal | None = None

    async def run(self, fn: Any, *args: Any) -> Any:
        """Call an async kernel method on the kernel's own loop."""
        if self.portal is None:
            return await fn(*args)
        return await anyio.to_thread.run_sync(self.portal.call, fn, *args)

    async def agent(self, name: str, goal: str = "") -> tuple[int, Any]:
        """Spawn ``name`` and return (pid, a caller acting as it over this rig's transport)."""
        if self.transport == "inproc":
            pid = await self.kernel.spawn(name, goal)
            return pid, ProcessContext(self.kernel, self.kernel._procs[pid])
        front = await self.frontend()
        pid, token = await front.spawn_with_token(name, goal)
        return pid, await self.stack.enter_async_context(SocketClient(self.socket, token))

    async def frontend(self) -> Any:
        """The front end: the kernel itself in-process, a SocketClient with the user's token otherwise."""
        if self.transport == "inproc":
            return self.kernel
        return await self.stack.enter_async_context(SocketClient(self.socket, self.frontend_token))


@asynccontextmanager
async def _kernel(config: Config, store: Store, plugins: PluginManager, sock: Path | None) -> AsyncIterator[Any]:
    async with open_kernel(config, runtime=FakeBackend(), store=store, plugins=plugins) as kernel:
        if sock is None:
            yield kernel, None, None
        else:
            async with serve_socket(kernel, sock) as (path, token):
                yield kernel, path, token


@asynccontextmanager
async def open_rig(
    tmp_path: Path,
    transport: Transport = "inproc",
    config: Config | None = None,
    agents: Any = None,
) -> AsyncIterator[Rig]:
    """A kernel for the test. Over the socket it runs on its own event loop in another thread, as a daemon
    would in another process: then even the client's blocking calls (``ps()``) cannot stall it."""
    root = tmp_path / "files"
    (root / "granted" / "rw").mkdir(parents=True, exist_ok=True)
    (root / "granted" / "note.txt").write_text("granted note")
    (root / "secret.txt").write_text("SECRET")
    store = Store.open(tmp_path / "aios.db")
    plugins = PluginManager(load_entry_points=False)

    class Extras:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return (agents or agent_classes)(root)  # type: ignore[no-any-return]

    plugins.register(Extras(), name="access-kit")
    config = config or Config()
    config.llm.backend = "fake"
    sock_dir = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp"))  # AF_UNIX paths must stay short
    try:
        if transport == "inproc":
            async with _kernel(config, store, plugins, None) as (kernel, _, _):
                rig = Rig(kernel, store, root, transport)
                async with rig.stack:
                    yield rig
        else:
            with start_blocking_portal() as portal:
                with portal.wrap_async_context_manager(_kernel(config, store, plugins, sock_dir / "k.sock")) as (
                    kernel,
                    path,
                    token,
                ):
                    rig = Rig(kernel, store, root, transport, path, token, portal=portal)
                    async with rig.stack:
                        yield rig
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
        store.close()
