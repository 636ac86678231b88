"""The kernel: process table, agent tasks, and the syscalls that route to the engine and the store."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from pydantic import ValidationError

from aios import paths
from aios.api import PRIORITIES, Agent, Capabilities, Manifest
from aios.config import Config, load_config
from aios.errors import (
    AiosError,
    BudgetExceeded,
    PermissionDenied,
    ProcessNotFound,
    UnknownSyscall,
    UsageError,
    first_problem,
)
from aios.filemodes import private_umask, secure_home
from aios.plugin_manager import ApprovalSubject, PluginManager, record_approval
from aios.plugin_manager import approved as plugin_approved
from kernel.access import TOP, AccessGuard, attenuate
from kernel.approvals import ApprovalBroker
from kernel.audit import AuditLog
from kernel.backends.base import LLMEngine, Runtime, SamplingParams
from kernel.blocking import run_blocking
from kernel.context import ProcessContext
from kernel.engine import Engine
from kernel.events import (
    EventBus,
    InputSent,
    KernelEvent,
    OutputWritten,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
    TurnEnded,
)
from kernel.grammar import schema_to_gbnf
from kernel.policy import PolicyStore, grant_caps, narrow
from kernel.process import Process, ProcState
from kernel.remote_engine import RemoteEngine
from kernel.scheduler import ToolTimes
from kernel.syscall_table import load_services, load_syscalls
from kernel.syscalls import SYSCALLS, Access, LLMChatRequest
from kernel.tokens import FRONTEND, TokenRegistry
from kernel.worker_host import AgentFailed, WorkerDied, WorkerRun, run_worker
from kernel.worker_host import plan as worker_plan
from memory.store import Store
from memory.store_writer import StoreWriter

__all__ = ["Kernel", "load_runtime", "open_kernel"]

log = logging.getLogger(__name__)

#: The principal name of the person at the terminal (pid 0).
USER = "user"

#: Exit code of a process stopped by ``kill`` (as a shell reports SIGTERM).
KILLED_EXIT_CODE = 143


def load_runtime(config: Config) -> Runtime | None:
    """Load the configured model into a multi-sequence runtime (None for a remote server). Blocking."""
    if config.llm.backend in ("openai", "pool"):
        return None
    if config.llm.backend == "fake":
        from kernel.backends.fake import FakeBackend

        return FakeBackend(n_seq_max=config.llm.n_seq_max, n_ctx_seq=config.llm.n_ctx)
    from pathlib import Path

    from aios.models import ModelRegistry
    from kernel.backends.llama_runtime import LlamaRuntime, default_threads

    info = ModelRegistry().get(config.llm.model or None)
    return LlamaRuntime(
        Path(info.path),
        model_name=info.name,
        n_seq_max=config.llm.n_seq_max,
        n_ctx_seq=config.llm.n_ctx,
        n_batch=config.llm.n_batch,
        n_threads=config.llm.n_threads or default_threads(),
        flash_attn=config.llm.flash_attn,
    )


def _remote_engine(config: Config) -> LLMEngine:
    llm = config.llm
    if llm.backend == "pool":
        from kernel.engine_pool import EnginePool

        if not llm.servers:
            raise UsageError(
                "[llm] backend = 'pool' needs [[llm.servers]]", "e.g. [[llm.servers]] url = 'http://10.0.0.5:8000'"
            )
        return EnginePool(
            llm.servers,
            pool=llm.pool,
            api_key=os.environ.get(llm.openai_api_key_env) or None,
            policy=llm.policy,
            model_name=llm.openai_model or None,
        )
    if not llm.openai_url:
        raise UsageError("[llm] backend = 'openai' needs [llm] openai_url", "e.g. openai_url = 'http://127.0.0.1:8080'")
    return RemoteEngine(
        llm.openai_url,
        model=llm.openai_model or None,
        api_key=os.environ.get(llm.openai_api_key_env) or None,
        max_concurrency=llm.max_batch,
        policy=llm.policy,
    )


class Kernel:
    def __init__(self, *, config: Config, store: Store, runtime: Runtime | None, plugins: PluginManager) -> None:
        self.config = config
        self.store = store
        self.engine: LLMEngine
        #: How long each tool's calls usually take (learned): the engine's hint for whom to keep resident.
        self.tool_times = ToolTimes()
        if runtime is None:
            self.engine = _remote_engine(config)
        else:
            self.engine = Engine(
                runtime,
                max_batch=config.llm.max_batch,
                swap_dir=paths.swap_dir(),
                swap_ram_bytes=config.llm.swap_ram_mb * 2**20,
                policy=config.llm.policy,
                adapt_threads=config.llm.n_threads == 0,
            )
        self.model_name = self.engine.model_name
        self.plugins = plugins
        self.boot_id = uuid.uuid4().hex
        self.events = EventBus()
        self._procs: dict[int, Process] = {}
        self._next_pid = 1
        self.task_group: anyio.abc.TaskGroup | None = None
        # Access control (issue 5): the guard decides, approvals ask the user, every decision is audited.
        self.guard = AccessGuard(
            policy=PolicyStore(),
            processes=self._procs.get,
            children=self.live_children,
            task_owner=self._task_owner,
        )
        self.approval_broker = ApprovalBroker(self)
        self.tokens = TokenRegistry()
        self.audit = AuditLog(store.path)
        #: Process rows and messages are written behind, off the event loop (memory/store_writer.py).
        self._writer = StoreWriter(store.path)
        #: Processes of third-party agents waiting for the user to approve their plugin: no syscalls yet.
        self._unapproved: set[int] = set()
        #: Task-tree owners never change: remembered so access checks stay off SQLite.
        self._task_owners: dict[int, str] = {}
        #: Domain services (semantic FS, memory, MCP host...) by name, set up by their owners at boot.
        self.services: dict[str, Any] = {}
        #: The person at the terminal: a principal of its own (pid 0), whose every action from a front end
        #: goes through ``dispatch`` like an agent's. Capabilities: everything, narrowed by ``[access.user]``.
        self.user = Process(
            pid=0,
            agent=USER,
            goal="",
            priority="high",
            token_budget=0,
            interactive=False,
            caps=attenuate(TOP, grant_caps(config.access.user)),
            state=ProcState.RUNNING,
        )
        load_syscalls()

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled. Start with ``await tg.start(kernel.run)``."""
        reaped = await run_blocking(self.store.reap_orphans, self.boot_id, pool="db")
        if reaped:
            log.warning("marked %d process(es) from a previous kernel as failed", reaped)
        self._next_pid = await run_blocking(self.store.next_pid, pool="db")
        self.engine.start()
        try:
            # Services live inside the task group (and close before it), so one that opens its own task
            # group or cancel scope nests properly.
            async with anyio.create_task_group() as tg, AsyncExitStack() as services:
                self.task_group = tg
                for name, factory in load_services():
                    try:
                        self.services[name] = await services.enter_async_context(factory(self))
                    except Exception:
                        log.exception("kernel service %s failed to start; continuing without it", name)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self.task_group = None
            with anyio.CancelScope(shield=True):
                await self.engine.aclose()
                self.events.close()
                await anyio.to_thread.run_sync(self._writer.close)
                await anyio.to_thread.run_sync(self.audit.close)

    # -- the KernelClient surface ------------------------------------------------------------------

    def agents(self) -> dict[str, str]:
        return {name: cls.manifest.description for name, cls in sorted(self.plugins.agents().items())}

    async def spawn(
        self,
        agent: str,
        goal: str = "",
        *,
        interactive: bool | None = None,
        priority: str | None = None,
        ppid: int = 0,
        owner: str = "user",
        caps: Capabilities | None = None,
        unconfined: bool = False,
        allow_read: tuple[str, ...] = (),
        allow_write: tuple[str, ...] = (),
    ) -> int:
        """Start ``agent``. Its capabilities are its manifest's narrowed by the config, and by ``caps`` when
        given (a parent's, for a child: attenuation only, never wider). It runs in its own OS process,
        confined by Landlock and resource limits (``kernel.worker_host.plan``; ``unconfined``: without
        Landlock, as the user's explicit choice). ``allow_read``/``allow_write``: folders the user grants this
        run on top (`aios run --allow-read/--allow`), within what ``[access.user]`` lets the user grant."""
        if self.task_group is None:
            raise UsageError("the kernel is not running")
        cls = self.plugins.agent(agent)
        manifest = cls.manifest
        worker_spec, confine = worker_plan(self, cls, unconfined=unconfined)
        granted = narrow(manifest.name, manifest.capabilities, self.config.access)
        if ppid == 0:  # started by the person at the terminal: never more than [access.user] lets them have
            granted = attenuate(granted, self.user.caps)
        if caps is not None:
            granted = attenuate(granted, caps)
        extra = self._user_grants(allow_read, allow_write) if ppid == 0 else ()
        if extra:
            reads = tuple(root for root, writable in extra if not writable)
            writes = tuple(root for root, writable in extra if writable)
            granted = dataclasses.replace(
                granted, files_read=granted.files_read + reads, files_write=granted.files_write + writes
            )
        priority = self._clamp_priority(manifest, priority or manifest.priority or self.config.kernel.default_priority)
        if PRIORITIES.index(priority) < PRIORITIES.index(granted.max_priority):
            priority = granted.max_priority
        budget = granted.llm_token_budget
        proc = Process(
            pid=self._next_pid,
            agent=manifest.name,
            goal=goal,
            priority=priority,
            token_budget=self.config.kernel.agent_token_budget if budget is None else budget,
            interactive=manifest.interactive if interactive is None else interactive,
            ppid=ppid,
            owner=owner,
            caps=granted,
        )
        self._next_pid += 1
        token = self.tokens.mint(proc.pid)
        # In a worker the plugin's code (even its constructor) runs only in that confined process.
        instance: Agent | WorkerRun = cls() if worker_spec is None else WorkerRun(cls, worker_spec, token, confine)
        self._procs[proc.pid] = proc
        self._persist(proc)
        self.audit.record(
            pid=ppid or None,
            agent=owner,
            syscall="proc.spawn",
            resource=agent,
            decision="allow",
            token_id=self.tokens.token_id(ppid) if ppid else "",
            detail={"child": proc.pid},
        )
        for root, write in extra:
            self.audit.record(
                pid=proc.pid,
                agent=USER,
                syscall="proc.grant",
                resource=f"file:{root}" + (" (write)" if write else ""),
                decision="allow",
                reason="granted by the user for this run (aios run --allow)",
            )
        if goal:
            self._writer.add_message(proc.pid, "user", goal)
        self.events.publish(ProcessSpawned(proc.pid, proc.info()))
        # A third-party agent runs once the user approved what it declares (asked on its first run).
        subject = self.plugins.approval_subject(agent)
        if subject is not None and not await run_blocking(plugin_approved, subject, pool="db"):
            self._unapproved.add(proc.pid)  # until the user answers (an approval already recorded: none)
        self.task_group.start_soon(self._run_process, proc, instance, subject, name=f"aios-pid-{proc.pid}")
        return proc.pid

    def _user_grants(self, read: tuple[str, ...], write: tuple[str, ...]) -> list[tuple[str, bool]]:
        """The folders the user grants one run, each attenuated by ``[access.user]``: (root, write) pairs."""
        out: list[tuple[str, bool]] = []
        for path, writable in [(p, False) for p in read] + [(p, True) for p in write]:
            flag = "--allow" if writable else "--allow-read"
            real = os.path.realpath(os.path.expanduser(path))
            if not os.path.isabs(os.path.expanduser(path)):
                raise UsageError(f"{flag} {path}: give an absolute path (the kernel has no working directory)")
            if not os.path.isdir(real):
                raise UsageError(f"{flag} {path}: not a folder")
            probe = Capabilities(files_write=(real,)) if writable else Capabilities(files_read=(real,))
            held = attenuate(probe, self.user.caps)
            roots = held.files_write if writable else held.files_read + held.files_write
            if not roots:
                verb = "write" if writable else "read"
                raise PermissionDenied(f"{flag} {path}: outside the folders [access.user] lets you {verb}")
            out.extend((root, writable) for root in roots if (root, writable) not in out)
        return out

    async def send(self, pid: int, text: str) -> None:
        proc = self.process(pid)
        if not proc.alive:
            raise UsageError(f"process {pid} has already ended")
        if not proc.interactive:
            raise UsageError(f"process {pid} ({proc.agent}) does not take input")
        try:
            proc.inbox_send.send_nowait(text)
        except anyio.ClosedResourceError:
            raise UsageError(f"process {pid} no longer takes input") from None
        self._writer.add_message(pid, "user", text)
        self.events.publish(InputSent(pid, text))
        await run_blocking(self._writer.flush, pool="db")  # stored when we answer

    async def close_input(self, pid: int) -> None:
        self.process(pid).inbox_send.close()

    async def kill(self, pid: int) -> None:
        proc = self.process(pid)
        if proc.alive:
            if proc.cancel_scope is None:  # not started yet: its task enters this already-cancelled scope
                proc.cancel_scope = anyio.CancelScope()
            proc.cancel_scope.cancel()

    async def suspend(self, pid: int) -> None:
        """Stop scheduling the agent's LLM work; its context is the first to be swapped out."""
        proc = self.process(pid)
        if not proc.alive:
            raise UsageError(f"process {pid} has already ended")
        self.engine.suspend(pid)
        if proc.os_pid is not None:  # the worker stops too, not just its LLM work
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.os_pid, signal.SIGSTOP)
        if not proc.suspended:
            proc.resume_state = proc.state
            self.set_state(proc, ProcState.SUSPENDED)
            proc.suspended = True

    async def resume(self, pid: int) -> None:
        proc = self.process(pid)
        self.engine.resume(pid)
        if proc.os_pid is not None and proc.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.os_pid, signal.SIGCONT)
        if proc.suspended:
            proc.suspended = False
            self.set_state(proc, proc.resume_state)

    async def nice(self, pid: int, priority: str) -> None:
        """Change a process's priority class (capped by its manifest)."""
        proc = self.process(pid)
        proc.priority = self._clamp_priority(self.plugins.agent(proc.agent).manifest, priority)
        self.engine.set_priority(pid, proc.priority)
        self._persist(proc)

    async def wait(self, pid: int) -> dict[str, Any]:
        proc = self.process(pid)
        await proc.done.wait()
        await run_blocking(self._writer.flush, pool="db")  # its final row and messages are stored too
        return self.info(pid)

    def ps(self) -> list[dict[str, Any]]:
        return [self.info(pid) for pid in self._procs]

    def info(self, pid: int) -> dict[str, Any]:
        info = self.process(pid).info()
        info.update(self.engine.context_info.get(pid, {"residency": "none"}))
        return info

    def subscribe(self, *, approver: bool = False) -> MemoryObjectReceiveStream[KernelEvent]:
        """Kernel events; ``approver``: this front end answers approval requests while the stream is open."""
        return self.events.subscribe(approver=approver)

    def approvals(self) -> list[dict[str, Any]]:
        """Approval requests waiting for an answer."""
        return self.approval_broker.pending()

    async def approve(
        self, request_id: str, answer: str, *, by: str = "user", content: dict[str, Any] | None = None
    ) -> None:
        """Answer a pending approval: allow_once, allow_always, deny or deny_always; a form request (kind
        ``elicit``): accept (with ``content`` fitting its schema), decline or cancel."""
        self.approval_broker.answer(request_id, answer, by=by, content=content)

    def audit_rows(
        self, *, agent: str | None = None, denied_only: bool = False, limit: int = 200
    ) -> list[dict[str, Any]]:
        """The latest audit rows (blocking: waits for the audit writer, then reads SQLite; thread-safe)."""
        self.audit.flush()
        return self.store.audit_rows(agent=agent, denied_only=denied_only, limit=limit)

    def flush_writes(self) -> None:
        """Block until every process row and message recorded so far is committed (thread-safe)."""
        self._writer.flush()

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes with the running model's tokenizer (an estimate on a remote engine:
        ``self.engine.exact_token_count`` says which)."""
        return self.engine.count_tokens(text)

    def live_children(self, pid: int) -> int:
        return sum(1 for p in self._procs.values() if p.ppid == pid and p.alive)

    def _task_owner(self, tree_id: int) -> str | None:
        """The agent owning task tree ``tree_id`` (for access control); None if unknown."""
        owner = self._task_owners.get(tree_id)
        if owner is not None:
            return owner
        tasks = getattr(self.services.get("memory"), "tasks", None)
        if tasks is None:
            return None
        try:  # once per tree made by an earlier kernel: one indexed read on the loop
            owner = str(tasks.tree(tree_id)["owner"])
        except (AiosError, KeyError):
            return None
        self.note_task_owner(tree_id, owner)
        return owner

    def note_task_owner(self, tree_id: int, owner: str) -> None:
        self._task_owners[tree_id] = owner

    # -- process internals -------------------------------------------------------------------------

    @staticmethod
    def _clamp_priority(manifest: Manifest, priority: str) -> str:
        if priority not in PRIORITIES:
            raise UsageError(f"unknown priority '{priority}' (use one of: {', '.join(PRIORITIES)})")
        ceiling = manifest.capabilities.max_priority
        if PRIORITIES.index(priority) < PRIORITIES.index(ceiling):
            return ceiling  # a manifest caps how urgent its agent may be
        return priority

    def process(self, pid: int) -> Process:
        try:
            return self._procs[pid]
        except KeyError:
            raise ProcessNotFound(f"no process with pid {pid}", "see `aios ps`") from None

    def _persist(self, proc: Process) -> None:
        if proc is self.user:
            return  # the person at the terminal is not a process row
        record = proc.record(self.boot_id)
        record["residency"] = self.engine.context_info.get(proc.pid, {}).get("residency", "none")
        self._writer.save_process(record)

    def set_state(self, proc: Process, state: ProcState) -> None:
        if proc.state.terminal:
            return
        if proc.suspended and state is not ProcState.SUSPENDED:
            proc.resume_state = state  # shown again on resume
            return
        if proc.state is state:
            return
        proc.state = state
        self._persist(proc)
        self.events.publish(ProcessStateChanged(proc.pid, state.value))

    async def _run_process(
        self, proc: Process, agent: Agent | WorkerRun, subject: ApprovalSubject | None = None
    ) -> None:
        ctx = ProcessContext(self, proc)
        self.set_state(proc, ProcState.RUNNING)
        try:
            with proc.cancel_scope or anyio.CancelScope() as scope:
                proc.cancel_scope = scope
                try:
                    if subject is not None:
                        await self._approve_plugin(proc, subject)
                    if isinstance(agent, WorkerRun):  # its own OS process; kill reaps it (SIGTERM, SIGKILL)
                        result = await run_worker(
                            self, proc, agent.cls, agent.spec, token=agent.token, confine=agent.confine
                        )
                    else:
                        result = await agent.run(ctx, proc.goal)
                except WorkerDied as exc:
                    log.warning("agent %s (pid %d, os pid %s) died: %s", proc.agent, proc.pid, proc.os_pid, exc)
                    self._audit_death(proc, exc.message)
                    self._finish(proc, ProcState.FAILED, exc.code, error=exc.message)
                except AgentFailed as exc:
                    self._finish(proc, ProcState.FAILED, 1, error=exc.message)
                except Exception as exc:
                    log.exception("agent %s (pid %d) failed", proc.agent, proc.pid)
                    self._finish(proc, ProcState.FAILED, 1, error=f"{type(exc).__name__}: {exc}")
                else:
                    self._finish(proc, ProcState.EXITED, 0, result=None if result is None else str(result))
            if scope.cancelled_caught:
                self._finish(proc, ProcState.EXITED, KILLED_EXIT_CODE, error="killed")
        finally:
            # Kernel shutdown cancels every agent from outside its scope.
            self._finish(proc, ProcState.EXITED, KILLED_EXIT_CODE, error="kernel shut down")

    async def _approve_plugin(self, proc: Process, subject: ApprovalSubject) -> None:
        """Ask the user to approve a third-party agent's declared capabilities unless config.toml records an
        approval of exactly these; "always" records it. Raises ``AgentFailed`` (one line) when not approved."""
        try:
            await self._ask_plugin_approval(proc, subject)
        finally:
            self._unapproved.discard(proc.pid)

    async def _ask_plugin_approval(self, proc: Process, subject: ApprovalSubject) -> None:
        if await run_blocking(plugin_approved, subject, pool="db"):
            return
        access = Access("proc", f"plugin {subject.plugin} (agent {subject.agent})")
        decision, reason = await self.approval_broker.ask(
            proc, "plugin.approve", access, subject.describe(), remember=False
        )
        answer = "deny"
        if decision == "allow":
            answer = "allow_always" if reason.endswith("chose always allow") else "allow_once"
            if answer == "allow_always":
                await run_blocking(record_approval, subject, pool="db")
        self.audit_process(
            proc,
            "plugin.approve",
            f"plugin:{subject.plugin}",
            "allow" if decision == "allow" else "deny",
            reason=reason,
            detail={"digest": subject.digest, "version": subject.version, "answer": answer},
        )
        if decision != "allow":
            raise AgentFailed(
                f"plugin {subject.plugin!r} (agent {subject.agent!r}) was not approved to run: "
                f"{reason.rsplit('; ', 1)[-1]}; approve it with `aios plugins approve {subject.agent}`"
            )

    def audit_process(self, proc: Process, syscall: str, resource: str, decision: str, **fields: Any) -> None:
        """An audit row for what ``proc`` did or had done to it, under its identity (pid, agent, token id)."""
        self.audit.record(
            pid=proc.pid,
            agent=proc.agent,
            token_id=self.tokens.token_id(proc.pid),
            syscall=syscall,
            resource=resource,
            decision=decision,
            **fields,
        )

    def _audit_death(self, proc: Process, reason: str) -> None:
        self.audit_process(proc, "proc.exit", f"os-pid:{proc.os_pid}", "deny", reason=reason)

    def _finish(
        self, proc: Process, state: ProcState, code: int, *, result: str | None = None, error: str | None = None
    ) -> None:
        if proc.state.terminal:
            return
        if proc.turn_text:
            self.end_turn(proc)
        proc.state = state
        proc.exit_code = code
        proc.result = result
        proc.error = error
        proc.ended_at = time.time()
        proc.inbox_send.close()
        proc.inbox.close()
        self.tokens.revoke(proc.pid)
        self._unapproved.discard(proc.pid)
        self.engine.release(proc.pid)
        self._persist(proc)
        self.events.publish(ProcessExited(proc.pid, state.value, code, result, error))
        proc.done.set()

    # -- syscalls ---------------------------------------------------------------------------------

    async def dispatch(self, proc: Process, name: str, payload: dict[str, Any]) -> Any:
        """The one path for every table syscall: validate, check each access (asking the user where the
        policy says so), audit, run."""
        token_id = FRONTEND if proc is self.user else self.tokens.token_id(proc.pid)

        def audit(resource: str, decision: str, reason: str = "") -> None:
            self.audit.record(
                pid=proc.pid,
                agent=proc.agent,
                token_id=token_id,
                syscall=name,
                resource=resource,
                decision=decision,
                reason=reason,
            )

        spec = SYSCALLS.get(name)
        if spec is None:
            audit("", "deny", "unknown syscall")
            raise UnknownSyscall(f"unknown syscall {name!r}", f"known: {', '.join(sorted(SYSCALLS))}")
        try:
            request = spec.request.model_validate(payload)
        except ValidationError as exc:
            reason = first_problem(exc)
            audit("", "deny", reason)
            raise UsageError(f"{name}: invalid request: {reason}") from None
        if not proc.alive:
            audit("", "deny", "process has ended")
            raise PermissionDenied(f"{name} by pid {proc.pid} ({proc.agent}): the process has ended")
        if proc.pid in self._unapproved:  # e.g. an outside program holding its token before the user approved
            audit("", "deny", "plugin not approved yet")
            raise PermissionDenied(f"{name} by pid {proc.pid} ({proc.agent}): its plugin is not approved yet")
        accesses = list(spec.access(self, proc, request))
        for access in accesses:
            decision, reason = self.guard.decide(proc, proc.caps, access)
            if decision == "ask":
                decision, reason = await self.approval_broker.ask(proc, name, access, reason)
            audit(access.describe(), decision, reason)
            if decision != "allow":
                raise PermissionDenied(f"{name} by pid {proc.pid} ({proc.agent}): {reason or 'denied'}")
        if not accesses:
            audit("", "allow")
        try:
            return await spec.handler(self, proc, request)
        except PermissionDenied as exc:  # refused past the check (e.g. a confined open met a symlink)
            audit(", ".join(a.describe() for a in accesses), "deny", exc.message)
            raise

    async def call(self, syscall: str, **payload: Any) -> Any:
        """A syscall by the person at the terminal (the ``user`` principal): checked and audited like any."""
        return await self.dispatch(self.user, syscall, payload)

    def write_output(self, proc: Process, text: str) -> None:
        if not text:
            return
        proc.turn_text.append(text)
        self.events.publish(OutputWritten(proc.pid, text))

    def end_turn(self, proc: Process) -> None:
        text = "".join(proc.turn_text)
        proc.turn_text.clear()
        if text:
            self._writer.add_message(proc.pid, "assistant", text)
        self.events.publish(TurnEnded(proc.pid))

    async def read_input(self, proc: Process) -> str | None:
        self.set_state(proc, ProcState.WAITING_INPUT)
        try:
            return await proc.inbox.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None
        finally:
            self.set_state(proc, ProcState.RUNNING)

    def _audit_llm(self, proc: Process, decision: str, **fields: Any) -> None:
        self.audit_process(proc, "llm.chat", f"llm:{self.model_name}", decision, **fields)

    async def llm_chat(self, proc: Process, request: LLMChatRequest) -> AsyncIterator[str]:
        """``llm.chat``: check model and budget through the guard, audit, queue on the engine, stream back,
        account."""
        llm = self.config.llm
        decision, reason = self.guard.decide(proc, proc.caps, Access("llm", str(self.model_name)))
        if decision != "allow" or not proc.alive:
            reason = reason or "the process has ended"
            self._audit_llm(proc, "deny", reason=reason)
            if proc.budget_left == 0:
                raise BudgetExceeded(f"process {proc.pid} ({proc.agent}): {reason}")
            raise PermissionDenied(f"llm.chat by pid {proc.pid} ({proc.agent}): {reason}")
        left = proc.budget_left
        max_tokens = request.max_tokens or llm.max_tokens
        if left is not None:
            max_tokens = min(max_tokens, left)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=llm.temperature if request.temperature is None else request.temperature,
            top_p=llm.top_p if request.top_p is None else request.top_p,
            seed=request.seed,
            stop=tuple(request.stop),
            repeat_penalty=llm.repeat_penalty,
            ignore_eos=request.ignore_eos,
            grammar=schema_to_gbnf(request.json_schema) if request.json_schema else None,
        )
        self._audit_llm(proc, "allow", detail={"messages": len(request.messages), "max_tokens": max_tokens})
        self.set_state(proc, ProcState.WAITING_LLM)
        generation = self.engine.submit(
            proc.pid,
            params,
            messages=[m.model_dump() for m in request.messages],
            priority=proc.priority,
        )
        acct = proc.accounting
        acct.llm_calls += 1
        try:
            async for piece in generation:
                if proc.state is ProcState.WAITING_LLM:
                    acct.ttft_s = time.monotonic() - generation.submitted_at
                    self.set_state(proc, ProcState.RUNNING)
                yield piece
        finally:
            if generation.first_token_at is not None:
                acct.llm_wait_s += generation.first_token_at - generation.submitted_at
            stats = generation.stats
            if stats is not None:
                acct.prompt_tokens += stats.prompt_tokens
                acct.completion_tokens += stats.completion_tokens
                acct.prefill_computed += stats.prefill_computed
                acct.queue_wait_s += stats.queue_wait_s
                acct.swaps += stats.swaps
                acct.restores += stats.restores
                acct.recomputes += stats.recomputes
                if stats.mean_tbt_s is not None:
                    acct.tbt_s = stats.mean_tbt_s
            self.set_state(proc, ProcState.RUNNING)
            self._persist(proc)


@asynccontextmanager
async def open_kernel(
    config: Config | None = None,
    *,
    runtime: Runtime | None = None,
    store: Store | None = None,
    plugins: PluginManager | None = None,
) -> AsyncIterator[Kernel]:
    """Open the stores, load the model (in a worker thread), run the kernel for the block's duration.

    The kernel runs under umask 077 and makes the data and config dirs 0700: every store, WAL, swap, lock,
    log and token file it creates is private to the user (see ``aios.filemodes``).
    """
    config = config or load_config()
    with private_umask():
        secure_home()
        async with _run_kernel(config, runtime=runtime, store=store, plugins=plugins) as kernel:
            yield kernel


@asynccontextmanager
async def _run_kernel(
    config: Config, *, runtime: Runtime | None, store: Store | None, plugins: PluginManager | None
) -> AsyncIterator[Kernel]:
    own_store = store is None
    store = store or Store.open()
    try:
        if runtime is None and config.llm.backend not in ("openai", "pool"):
            runtime = await anyio.to_thread.run_sync(load_runtime, config)
        kernel = Kernel(config=config, store=store, runtime=runtime, plugins=plugins or PluginManager())
        async with anyio.create_task_group() as tg:
            await tg.start(kernel.run)
            try:
                yield kernel
            finally:
                tg.cancel_scope.cancel()
    finally:
        if own_store:
            store.close()
