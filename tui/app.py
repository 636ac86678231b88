"""The aios Textual app: a process table and an agent console over an in-process kernel.

Events flow one way: the kernel worker reads ``kernel.subscribe()`` on the app's event loop and turns each
event into table updates or transcript text; streamed text is buffered per pid and written to the console
by a ~30 fps timer. User actions run kernel calls in async workers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Footer, Header, Input

from aios.api import PRIORITIES
from aios.config import Config, load_config
from aios.errors import AiosError
from aios.plugin_manager import PluginManager
from kernel.client import KernelClient
from kernel.events import (
    ApprovalRequested,
    ApprovalResolved,
    InputSent,
    KernelEvent,
    OutputWritten,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
    TurnEnded,
)
from kernel.kernel import open_kernel
from memory.store import Store
from tui.approval import ApprovalScreen
from tui.console import AgentConsole, tool_status
from tui.process_table import ProcessTable
from tui.transcript import Transcripts

__all__ = ["AiosApp", "make_app"]

log = logging.getLogger(__name__)

#: Screen refresh rate for streamed text, and how often accounting is re-read from ``kernel.ps()``.
FLUSH_INTERVAL_S = 1 / 30
PS_INTERVAL_S = 0.5
#: How long quitting waits for the kernel to stop its agents and the engine thread.
SHUTDOWN_TIMEOUT_S = 10.0

TERMINAL_STATES = frozenset({"exited", "failed"})


class AiosApp(App[None]):
    TITLE = "aios"
    CSS_PATH = "aios.tcss"
    BINDINGS = [
        Binding("ctrl+n", "new_agent", "New agent", priority=True),
        Binding("ctrl+k", "kill", "Kill agent", priority=True),
        Binding("ctrl+t", "toggle_suspend", "Suspend/resume", priority=True),
        Binding("ctrl+r", "renice", "Priority", priority=True),
        Binding("ctrl+o", "memory", "Memory", priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    class KernelReady(Message):
        """The kernel is running and its events are being shown."""

        def __init__(self, kernel: KernelClient) -> None:
            super().__init__()
            self.kernel = kernel

    class KernelFailed(Message):
        """The kernel could not start, or stopped with an error."""

        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    #: The process shown in the console and sent the prompt's text.
    selected_pid: reactive[int | None] = reactive(None)

    def __init__(
        self,
        *,
        config: Config | None = None,
        runtime: Any = None,
        store: Store | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._runtime = runtime
        self._store = store
        self._plugins = plugins
        self.kernel: KernelClient | None = None
        self.kernel_error: str | None = None
        self.transcripts = Transcripts()
        self._started = anyio.Event()  # set once the kernel is ready or has failed
        self._stopped = anyio.Event()
        self._spawn_lock = anyio.Lock()
        self._cursor_target: int | None = None  # pid whose row gets the cursor once it appears
        self._tool_lines: dict[int, str] = {}  # pid -> the status line of its running tool call

    # -- layout ------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            yield ProcessTable(id="processes")
            with Vertical(id="agent"):
                yield AgentConsole(id="console")
                yield Input(placeholder="Message the selected agent (Enter); ctrl+n starts another", id="prompt")
        yield Footer()

    @property
    def process_table(self) -> ProcessTable:
        return self.query_one("#processes", ProcessTable)

    @property
    def agent_console(self) -> AgentConsole:
        return self.query_one("#console", AgentConsole)

    def on_mount(self) -> None:
        self.sub_title = "starting the kernel…"
        self.process_table.border_title = "processes"
        self.agent_console.border_title = "console"
        self.query_one("#prompt", Input).focus()
        self.set_interval(FLUSH_INTERVAL_S, self._flush_output)
        self.set_interval(PS_INTERVAL_S, self._refresh_processes)
        self._run_kernel()

    async def on_unmount(self) -> None:
        # Textual cancels workers without waiting; wait here so agents and the engine stop cleanly.
        self.workers.cancel_group(self, "kernel")
        with anyio.move_on_after(SHUTDOWN_TIMEOUT_S):
            await self._stopped.wait()

    # -- the kernel --------------------------------------------------------------------------------

    @work(exclusive=True, group="kernel")
    async def _run_kernel(self) -> None:
        try:
            config = self.config = self.config or load_config()
            self._apply_theme(config.tui.theme)
            async with self._connect(config) as kernel:
                with kernel.subscribe(approver=True) as events:  # this front end answers approvals
                    self.kernel = kernel
                    self._started.set()
                    model = kernel.model_name
                    self.sub_title = str(model) if model else ""
                    self.post_message(self.KernelReady(kernel))
                    async for event in events:
                        self._on_kernel_event(event)
            self._kernel_failed("the kernel stopped")
        except AiosError as exc:
            self._kernel_failed(exc.one_line())
        except Exception as exc:
            log.exception("the kernel failed")
            self._kernel_failed(f"{type(exc).__name__}: {exc}")
        finally:
            self.kernel = None
            self._started.set()
            self._stopped.set()

    @asynccontextmanager
    async def _connect(self, config: Config) -> AsyncIterator[KernelClient]:
        """A running daemon's kernel over the socket if there is one; else an in-process kernel, which also
        serves the socket so other terminals (`aios ps`, `aios approvals watch`) see and drive it."""
        from aios.client import SocketClient, daemon_client
        from kernel.server import serve_if_free

        daemon = daemon_client()
        if daemon is not None:
            daemon.close()
            async with SocketClient() as client:
                yield client
            return
        async with open_kernel(config, runtime=self._runtime, store=self._store, plugins=self._plugins) as kernel:
            async with serve_if_free(kernel):
                yield kernel

    def _apply_theme(self, theme: str) -> None:
        if theme in self.available_themes:
            self.theme = theme
        else:
            log.warning("unknown theme %r in config; keeping %r", theme, self.theme)

    def _kernel_failed(self, error: str) -> None:
        self.kernel_error = error
        if not self.is_running:
            log.error("kernel: %s", error)
            return
        self.sub_title = "kernel not running"
        self.agent_console.append(f"error: {error}\n")
        self.notify(error, title="aios: kernel not running", severity="error", timeout=30)
        self.post_message(self.KernelFailed(error))

    def _on_kernel_event(self, event: KernelEvent) -> None:
        if not self.is_running:  # shutting down: the widgets may already be gone
            return
        pid = event.pid
        transcripts = self.transcripts
        match event:
            case OutputWritten(text=text):
                transcripts.output(pid, text)
            case ProcessStateChanged(state=state):
                self._show_state(pid, state)
            case ProcessSpawned(info=info):
                transcripts.started(pid, str(info.get("agent", "")), str(info.get("goal") or ""))
                self._show_process(info)
            case InputSent(text=text):
                transcripts.user(pid, text)
            case TurnEnded():
                transcripts.turn_ended(pid)
            case ProcessExited(state=state, exit_code=code, error=error):
                transcripts.exited(pid, state, code, error)
                self._show_state(pid, state)
            case ApprovalRequested():
                self._ask_approval(event)
            case ApprovalResolved(request_id=request_id):
                self._approval_gone(request_id)
            case _ if (line := tool_status(event)) is not None:
                if line:
                    self._tool_lines[pid] = line
                else:
                    self._tool_lines.pop(pid, None)
                if pid == self.selected_pid:
                    self._update_console_title()

    # -- approvals ---------------------------------------------------------------------------------

    def _ask_approval(self, request: ApprovalRequested) -> None:
        def answered(answer: str | None) -> None:
            if answer is not None:
                self._answer_approval(request.request_id, answer)

        self.push_screen(ApprovalScreen(request), answered)

    def _approval_gone(self, request_id: str) -> None:
        """Answered elsewhere, timed out or cancelled: close its dialog if it is still open."""
        for screen in self.screen_stack:
            if isinstance(screen, ApprovalScreen) and screen.request.request_id == request_id:
                screen.withdraw()

    @work(group="input")
    async def _answer_approval(self, request_id: str, answer: str) -> None:
        if self.kernel is None:
            return
        try:
            await self.kernel.approve(request_id, answer, by="tui")
        except AiosError as exc:
            self.notify(exc.one_line(), severity="warning")

    def _show_process(self, info: dict[str, Any]) -> None:
        self.process_table.upsert(info)
        if info["pid"] == self._cursor_target:
            self._cursor_target = None
            self.process_table.show_pid(info["pid"])

    def _show_state(self, pid: int, state: str) -> None:
        self.process_table.set_state(pid, state)
        if pid == self.selected_pid:
            self._update_console_title()

    def _refresh_processes(self) -> None:
        """Accounting (tokens, TTFT) changes without events; re-read it from the kernel."""
        if self.kernel is not None and self.is_running:
            for info in self.kernel.ps():
                self._show_process(info)
            self._update_console_title()
            self._show_index_progress()

    def _show_index_progress(self) -> None:
        """The semantic FS's indexing progress (vectors still to embed) next to the model name."""
        semfs = getattr(self.kernel, "services", {}).get("semfs")
        model = str(getattr(self.kernel, "model_name", "") or "")
        line = semfs.progress_line() if semfs is not None else ""
        self.sub_title = f"{model} · {line}" if line and model else (line or model)

    def _flush_output(self) -> None:
        if not self.is_running:
            return
        flushed = self.transcripts.flush()
        if self.selected_pid in flushed:
            self.agent_console.append(flushed[self.selected_pid])

    # -- selection ---------------------------------------------------------------------------------

    def watch_selected_pid(self, pid: int | None) -> None:
        if not self.is_running:
            return
        self._flush_output()
        self.agent_console.show("" if pid is None else self.transcripts.text(pid))
        self._update_console_title()

    def _update_console_title(self) -> None:
        pid = self.selected_pid
        if pid is None or pid not in self.process_table.pids:
            title = "console" if pid is None else f"console · pid {pid}"
        else:
            table = self.process_table
            title = f"console · pid {pid} {table.cell(pid, 'agent')} · {table.cell(pid, 'state')}"
        self.agent_console.border_title = title
        self.agent_console.border_subtitle = "" if pid is None else self._tool_lines.get(pid, "")

    def on_process_table_selected(self, message: ProcessTable.Selected) -> None:
        self.selected_pid = message.pid

    # -- user actions ------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.clear()
        if text:
            self._send(text)

    def action_memory(self) -> None:
        """The Memory view (tui/memory_view.py) of the selected process: its task trees and core memory."""
        from aios import paths
        from tui.memory_view import MemoryView

        pid = self.selected_pid
        agent = self.process_table.cell(pid, "agent") if pid in self.process_table.pids else None
        db = self._store.path if self._store is not None else paths.db_path()
        self.push_screen(MemoryView(db, pid=pid, agent=str(agent) if agent else None))

    def action_new_agent(self) -> None:
        self._new_agent()

    def action_kill(self) -> None:
        if self.selected_pid is None:
            self.notify("no process selected", severity="warning")
            return
        self._kill(self.selected_pid)

    def action_toggle_suspend(self) -> None:
        if self.selected_pid is not None:
            self._control(self.selected_pid, "toggle_suspend")

    def action_renice(self) -> None:
        if self.selected_pid is not None:
            self._control(self.selected_pid, "renice")

    @work(group="input")
    async def _control(self, pid: int, what: str) -> None:
        """Suspend/resume the selected process, or move it to the next priority class."""
        kernel = await self._ready_kernel()
        if kernel is None:
            return
        info = next((p for p in kernel.ps() if p["pid"] == pid), None)
        if info is None:
            return
        try:
            if what == "toggle_suspend":
                await (kernel.resume(pid) if info["state"] == "suspended" else kernel.suspend(pid))
            else:
                classes = list(PRIORITIES)
                following = classes[(classes.index(info["priority"]) + 1) % len(classes)]
                await kernel.nice(pid, following)
                self.notify(f"pid {pid}: priority {following}")
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
        self._refresh_processes()

    async def _ready_kernel(self) -> KernelClient | None:
        if not self._started.is_set():
            self.notify("the kernel is starting; your message is sent when it is ready")
            await self._started.wait()
        if self.kernel is None:
            self.notify(self.kernel_error or "the kernel is not running", severity="error")
        return self.kernel

    async def _spawn_chat(self, kernel: KernelClient) -> int:
        agent = self.config.tui.default_agent if self.config else "chat"
        pid = await kernel.spawn(agent, interactive=True)
        self._select_and_show(pid)
        return pid

    def _select_and_show(self, pid: int) -> None:
        """Select ``pid`` from code (not from the table) and put the table cursor on it, now or when its row
        appears. Only this path moves the cursor: were selection changes echoed back to the cursor, a cursor
        move in flight would bounce between two rows forever."""
        if not self.is_running:
            return
        self.selected_pid = pid
        if pid in self.process_table.pids:
            self._cursor_target = None
            self.process_table.show_pid(pid)
        else:
            self._cursor_target = pid

    @work(group="input")
    async def _send(self, text: str) -> None:
        kernel = await self._ready_kernel()
        if kernel is None:
            return
        try:
            # One at a time, so two quick messages with no agent alive start one agent, not two.
            async with self._spawn_lock:
                pid = self.selected_pid
                alive = {p["pid"] for p in kernel.ps() if p["state"] not in TERMINAL_STATES and p["interactive"]}
                if pid is None or pid not in alive:
                    pid = await self._spawn_chat(kernel)
                await kernel.send(pid, text)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")

    @work(group="input")
    async def _new_agent(self) -> None:
        kernel = await self._ready_kernel()
        if kernel is None:
            return
        try:
            async with self._spawn_lock:
                await self._spawn_chat(kernel)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
        self.query_one("#prompt", Input).focus()

    @work(group="input")
    async def _kill(self, pid: int) -> None:
        kernel = await self._ready_kernel()
        if kernel is None:
            return
        try:
            await kernel.kill(pid)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")


def make_app(
    *,
    config: Config | None = None,
    runtime: Any = None,
    store: Store | None = None,
    plugins: PluginManager | None = None,
) -> AiosApp:
    """Build the app. Anything not given is made by the kernel: config from config.toml, the configured
    model, the store in the data dir, and the installed plugins. ``runtime`` is passed to ``open_kernel`` as
    is (tests give a scripted one)."""
    return AiosApp(config=config, runtime=runtime, store=store, plugins=plugins)
