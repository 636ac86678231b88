"""What a front end starts, and what it reads when no kernel runs: the second half of the door (beside
``kernel.connect``), so the CLI never imports a kernel, store, host or engine module itself.

- **Start**: the daemon (``serve_daemon``, `aios serve`), aios as an MCP server (``serve_mcp``, `aios mcp
  serve`), an agent run followed to its end (``run_agent``, `aios run`, `aios plan run`), the TUI's model
  (``load_model``).
- **mcp.json** as `aios mcp add|list|remove` edit it (``mcp_file``; servers from another file are tried in the
  kernel, ``tool.try``).
- **Records without a kernel**: processes, audit rows and remembered decisions (``processes``,
  ``audit_rows``, ``policy_rules``, ``policy_revoke``): the running kernel's over its socket, else what the
  last one left in the store, read-only (no model is loaded to read a table).
- **Probes** behind `aios doctor` (``probe_model``, ``probe_store``, ``probe_embeddings``).

Everything heavy is imported inside the function that needs it: importing this module costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.api import Capabilities
    from aios.config import Config

__all__ = [
    "audit_rows",
    "check_plan",
    "index_free",
    "load_model",
    "mcp_file",
    "policy_revoke",
    "policy_rules",
    "probe_embeddings",
    "probe_model",
    "probe_store",
    "processes",
    "rotate_mcp_token",
    "run_agent",
    "serve_daemon",
    "serve_mcp",
]

log = logging.getLogger(__name__)

Loading = Callable[[str], AbstractContextManager[Any]]


def _loading(loading: Loading | None) -> Loading:
    return loading or (lambda label: nullcontext())


# -- start -----------------------------------------------------------------------------------------------


def load_model(config: Config | None = None, *, loading: Loading | None = None) -> Any:
    """The configured model loaded (None for a remote server), for a front end that runs its own kernel."""
    from aios.config import load_config
    from kernel.kernel import load_runtime

    config = config or load_config()
    with _loading(loading)(f"loading model {config.llm.model or 'default'}…"):
        return load_runtime(config)


def serve_daemon(
    socket_path: Path | None,
    *,
    announce: Callable[[str], None],
    approver: Callable[[Any], Coroutine[Any, Any, None]] | None = None,
    loading: Loading | None = None,
) -> None:
    """`aios serve`: the kernel, headless, on its Unix socket until SIGTERM or SIGINT. ``approver(kernel)``
    (if given) answers approvals while it runs; ``announce`` gets one line when it serves and when it stops."""
    import signal

    import anyio

    from aios.config import load_config
    from kernel.kernel import open_kernel
    from kernel.server import serve_socket

    config = load_config()
    runtime = load_model(config, loading=loading)

    async def main() -> None:
        async with open_kernel(config, runtime=runtime) as kernel:
            async with serve_socket(kernel, socket_path) as (path, _):
                announce(f"aios kernel serving on {path} (model {kernel.model_name}); Ctrl+C stops it")
                async with anyio.create_task_group() as tg:
                    if approver is not None:
                        tg.start_soon(approver, kernel)
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for _ in signals:
                            break
                    tg.cancel_scope.cancel()
        announce("aios kernel stopped")

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        pass


def run_agent(
    agent: str,
    goal: str,
    *,
    priority: str | None,
    stream: Callable[[str], None] | None,
    approver: Callable[[Any], Coroutine[Any, Any, None]] | None = None,
    loading: Loading | None = None,
    unconfined: bool = False,
    grants: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> dict[str, Any]:
    """Run ``agent`` on ``goal`` non-interactively as a kernel process (in `aios ps`, audited); stream its
    output to ``stream``; return its final process info. The running daemon runs it when there is one, else a
    kernel started here. ``approver(client)`` answers approvals meanwhile (on the terminal). ``grants``:
    (read-only, read-write) folders the user grants this run (`--allow-read`, `--allow`)."""
    import anyio

    from kernel.client import SocketClient, daemon_client

    daemon = daemon_client()
    if daemon is not None:
        daemon.close()

        async def on_daemon() -> dict[str, Any]:
            async with SocketClient() as client:
                return await _follow(
                    client, await client.open_events(), agent, goal, priority, stream, approver, unconfined, grants
                )

        return anyio.run(on_daemon)
    from aios.config import load_config
    from aios.plugin_manager import PluginManager
    from kernel.kernel import open_kernel

    config = load_config()
    plugins = PluginManager()
    plugins.agent(agent)  # fail fast, before loading the model, on an unknown name
    runtime = load_model(config, loading=loading)

    async def in_process() -> dict[str, Any]:
        async with open_kernel(config, runtime=runtime, plugins=plugins) as kernel:
            return await _follow(
                kernel, kernel.subscribe(), agent, goal, priority, stream, approver, unconfined, grants
            )

    return anyio.run(in_process)


async def _follow(
    kernel: Any,
    events: Any,
    agent: str,
    goal: str,
    priority: str | None,
    stream: Callable[[str], None] | None,
    approver: Callable[[Any], Coroutine[Any, Any, None]] | None,
    unconfined: bool = False,
    grants: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> dict[str, Any]:
    import anyio

    from kernel.events import OutputWritten, ProcessExited

    async with anyio.create_task_group() as tg:
        if approver is not None:
            tg.start_soon(approver, kernel)
        extra: dict[str, Any] = {"unconfined": True} if unconfined else {}  # without Landlock: `--unconfined`
        if grants[0] or grants[1]:  # folders granted to this run: `aios run --allow-read/--allow`
            extra["allow_read"], extra["allow_write"] = grants
        pid = await kernel.spawn(agent, goal, interactive=False, priority=priority, **extra)
        with events:
            async for event in events:
                if event.pid != pid:
                    continue
                if isinstance(event, OutputWritten) and stream is not None:
                    stream(event.text)
                elif isinstance(event, ProcessExited):
                    break
        info = await kernel.wait(pid)
        if stream is not None:
            stream("\n")
        tg.cancel_scope.cancel()
    return dict(info)


def serve_mcp(
    caps: Capabilities,
    *,
    http: str | None,
    allow_remote: bool,
    families: tuple[str, ...] | None,
    warn: Callable[[str], None],
    on_token: Callable[[str], None],
) -> None:
    """`aios mcp serve`: aios's syscalls as an MCP server, over stdio or (``http`` = HOST:PORT) streamable HTTP
    behind a bearer token (made on the first start: ``on_token(token)`` shows it once)."""
    import anyio

    from aios import paths
    from kernel.mcp_export import serve_mcp as serve
    from tools.http_auth import ensure_token, parse_listen

    if http is None:
        anyio.run(lambda: serve(caps, families=families))
        return
    listen = parse_listen(http, allow_remote=allow_remote)
    if not listen.loopback:
        warn(
            f"warning: serving on {listen.host}:{listen.port}, reachable from other machines, over plain HTTP "
            "(anyone who sees the token can use it; put TLS in front)"
        )
    token, created = ensure_token()
    if created:
        on_token(token)

    def ready(url: str) -> None:
        warn(f"serving MCP on {url} (Authorization: Bearer <token in {paths.mcp_http_token_path()}>)")

    anyio.run(lambda: serve(caps, http=http, allow_remote=allow_remote, families=families, on_ready=ready))


def rotate_mcp_token() -> str:
    """A new bearer token for `aios mcp serve --http`; the old one stops working at once."""
    from tools.http_auth import create_token

    return create_token()


# -- mcp.json, and servers tried before they are added -------------------------------------------------------


class _LenientEnv(dict[str, str]):
    """Validation at add time must not need the secrets to be exported yet."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        import os

        return os.environ.get(key, "x")


class McpFile:
    """mcp.json as `aios mcp add|list|remove` edit it (validated like the kernel reads it)."""

    def read(self) -> dict[str, Any]:
        from tools.config import read_mcp_file

        return read_mcp_file()

    def write(self, doc: dict[str, Any]) -> None:
        from tools.config import write_mcp_file

        write_mcp_file(doc)

    def check(self, name: str, spec: Any) -> dict[str, Any]:
        """``spec`` parsed as the kernel would (secrets not needed yet); its redacted form."""
        from tools.config import parse_server

        return dict(parse_server(name, spec, environ=_LenientEnv()).redacted())

    def check_all(self, servers: dict[str, Any], source: str) -> None:
        from tools.config import parse_servers

        parse_servers({"mcpServers": servers}, source=source, environ=_LenientEnv())


mcp_file = McpFile()


def index_free() -> None:
    """Raise WriterBusy (one line, with what to do) if another process holds the index's writer lock: a
    command that would start a kernel fails at once instead of after loading the model."""
    from aios import paths
    from memory.semfs.db import SemDB

    db = SemDB(paths.db_path())
    try:
        db.acquire_writer()
    finally:
        db.close()


def check_plan(data: Any, source: str) -> None:
    """Raise the plan file's first problem (one line) before anything starts."""
    from tools.plan import load_plan

    load_plan(data, source=source)


# -- records a kernel left, read without one -------------------------------------------------------------------


def processes(*, include_exited: bool = False) -> list[dict[str, Any]]:
    """The running kernel's process table; with none, the last one recorded in the store."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            return [p for p in daemon.ps() if include_exited or p["state"] not in ("exited", "failed")]
        finally:
            daemon.close()
    from memory.store import Store

    store = Store.open_read_only()
    if store is None:
        return []
    try:
        return store.processes(include_exited=include_exited)
    finally:
        store.close()


def audit_rows(*, agent: str | None, denied: bool, limit: int) -> list[dict[str, Any]]:
    """The most recent audit rows: the running kernel's (its writer flushed), else the store's."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            flag = "true" if denied else None
            return list(daemon.request("GET", "/v1/audit", agent=agent, denied=flag, limit=limit))
        finally:
            daemon.close()
    from memory.store import Store

    store = Store.open_read_only()
    if store is None:
        return []
    try:
        return store.audit_rows(agent=agent, denied_only=denied, limit=limit)
    finally:
        store.close()


def policy_rules(agent: str | None) -> list[dict[str, Any]]:
    """The "always" answers the user gave (the running kernel's, else the policy file's)."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            return list(daemon.request("GET", "/v1/policy", agent=agent))
        finally:
            daemon.close()
    from kernel.policy import PolicyStore

    return [asdict(r) for r in PolicyStore().rules(agent)]


def policy_revoke(rule_id: int) -> dict[str, Any]:
    """Forget one remembered decision (in the running kernel, so it takes effect at once; else in the file)."""
    from kernel.client import daemon_client

    daemon = daemon_client()
    if daemon is not None:
        try:
            return dict(daemon.request("POST", "/v1/policy/revoke", {"id": rule_id}))
        finally:
            daemon.close()
    from kernel.policy import PolicyStore

    return asdict(PolicyStore().revoke(rule_id))


# -- probes behind `aios doctor` --------------------------------------------------------------------------------


def probe_model(model: str | None) -> str:
    """Whole-file GGUF check, then a real load (a sound file may still fail in llama.cpp). Returns one line
    describing the model; raises an AiosError saying what is wrong."""
    import importlib.util

    from aios.models import ModelRegistry, check_gguf

    info = ModelRegistry().get(model or None)
    check_gguf(Path(info.path), full=True)
    if importlib.util.find_spec("llama_cpp") is not None:
        from kernel.backends.llama_runtime import LlamaRuntime

        LlamaRuntime(Path(info.path), model_name=info.name, n_seq_max=1, n_ctx_seq=256, n_batch=64).close()
    size = Path(info.path).stat().st_size / 1e6
    return f"{info.name}: {info.path} ({size:.0f} MB, loads)"


def probe_store() -> str:
    """The store's schema state, in one line (it is opened read-only; an unreadable one raises AiosError)."""
    from aios import paths
    from memory.migrations import migrations
    from memory.store import Store

    store = Store.open_read_only()
    if store is None:
        return f"{paths.db_path()} not created yet (made on first run)"
    try:
        pending = [m.name for m in migrations.pending(store.db)]
    finally:
        store.close()
    if pending:
        return f"{paths.db_path()}: {len(pending)} migration(s) to apply on next start"
    return f"{paths.db_path()}: schema up to date"


def probe_embeddings() -> list[tuple[str, str | None, str]]:
    """Each embedding file: (label, its problem or None, its path)."""
    from memory.embedding_files import embedding_files

    return [(f.label, f.problem(), str(f.path)) for f in embedding_files()]
