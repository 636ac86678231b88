"""The aios Textual desktop: one mode per job (Agents, Console, Files, Memory, Tools, Logs), all over one
kernel client.

The app is a client of the kernel like any other (``kernel.connect.open_frontend``): the running kernel's
socket when `aios serve` is up, else an in-process kernel (which also serves the socket); the header says
which. It never touches a store, service or engine object: processes, events and approvals come through the
``KernelClient`` surface, everything else through syscalls made as the ``user`` principal (checked and
audited like any).

Events flow one way: the kernel worker reads ``subscribe()`` and turns each event into state here (the
transcripts, tool calls, the running plan) and hands it to each mode screen that exists; streamed text is
buffered per pid and written by a ~30 fps timer; accounting is re-read every half second off the loop.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import anyio
from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen

from aios.config import Config, load_config
from aios.errors import AiosError
from kernel.client import KernelClient
from kernel.connect import FrontEnd, open_frontend
from kernel.events import (
    ApprovalRequested,
    ApprovalResolved,
    InputSent,
    KernelEvent,
    OutputWritten,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgressed,
    TurnEnded,
)
from tui.agents_screen import AgentsScreen
from tui.approval import ApprovalScreen, approval_screen
from tui.common import MODE_KEYS, ModeScreen, ToolCalls
from tui.console import AgentConsole, tool_status
from tui.console_screen import ConsoleScreen
from tui.files_screen import FilesScreen
from tui.logs_screen import LogsScreen
from tui.memory_view import MemoryScreen
from tui.process_table import ProcessTable
from tui.tools_screen import ToolsScreen
from tui.transcript import Transcripts

__all__ = ["AiosApp", "make_app"]

log = logging.getLogger(__name__)

#: Screen refresh rate for streamed text (20/s: each repaint of a large console costs the shared event loop
#: ~19 ms at 160x50, and keys must not wait behind them; bench/tui.py), and how often accounting is re-read.
FLUSH_INTERVAL_S = 1 / 20
PS_INTERVAL_S = 0.5
#: How long quitting waits for the kernel to stop its agents and the engine thread.
SHUTDOWN_TIMEOUT_S = 10.0

TERMINAL_STATES = frozenset({"exited", "failed"})

#: The modes: name, key, label, screen.
MODES: tuple[tuple[str, str, str, type[ModeScreen]], ...] = tuple(
    (name, key, label, cls)
    for (name, key, label), cls in zip(
        MODE_KEYS, (AgentsScreen, ConsoleScreen, FilesScreen, MemoryScreen, ToolsScreen, LogsScreen), strict=True
    )
)


class AiosApp(App[None]):
    TITLE = "aios"
    CSS_PATH = "aios.tcss"
    DEFAULT_MODE = "console"
    BINDINGS = [
        *(Binding(key, f"mode('{name}')", label, priority=True, show=False) for name, key, label, _ in MODES),
        Binding("f8", "approvals", "Approvals", priority=True),
        Binding("f9", "toggle_theme", "Dark/light", priority=True, show=False),
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
        store: Any = None,
        plugins: Any = None,
    ) -> None:
        super().__init__()
        self.config = config
        self._runtime = runtime
        self._store = store
        self._plugins = plugins
        self.kernel: KernelClient | None = None
        self.door: FrontEnd | None = None
        self.kernel_error: str | None = None
        self.transcripts = Transcripts()
        self.tool_calls = ToolCalls()
        #: Every process seen, by pid (``ps()`` rows, updated by events in between).
        self.procs: dict[int, dict[str, Any]] = {}
        #: Summed tokens/s over the last minute of refreshes (the engine panel's sparkline).
        self.rates: deque[float] = deque([0.0] * 60, maxlen=60)
        self.engine_stats: dict[str, Any] = {}
        #: Approval requests waiting for an answer, oldest first, and the dialog showing one of them.
        self.pending: dict[str, ApprovalRequested] = {}
        self._dialog: ApprovalScreen | None = None
        self.mode_screens: dict[str, ModeScreen] = {}
        self._started = anyio.Event()  # set once the kernel is ready or has failed
        self._stopped = anyio.Event()
        self._spawn_lock = anyio.Lock()
        self._polling = False
        for name, _key, _label, cls in MODES:
            self.add_mode(name, self._maker(name, cls))

    def _maker(self, name: str, cls: type[ModeScreen]) -> Callable[[], Screen[Any]]:
        def make() -> Screen[Any]:
            screen = self.mode_screens[name] = cls()
            return screen

        return make

    # -- where things are ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return self.door.where if self.door is not None else ""

    @property
    def console_screen(self) -> ConsoleScreen:
        screen = self.mode_screens.get("console")
        assert isinstance(screen, ConsoleScreen)
        return screen

    @property
    def process_table(self) -> ProcessTable:
        return self.console_screen.process_table

    @property
    def agent_console(self) -> AgentConsole:
        return self.console_screen.agent_console

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, key, label, cls in MODES:
            yield SystemCommand(f"{label} mode ({key})", cls.HELP, lambda name=name: self.action_mode(name))
        yield SystemCommand("Approvals (f8)", "Answer the oldest waiting approval request", self.action_approvals)

    def action_toggle_theme(self) -> None:
        """Dark and light: the current theme's counterpart (the palette's "Change theme" lists them all)."""
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_mode(self, name: str) -> None:
        if isinstance(self.screen, ApprovalScreen):
            self.notify("answer the approval first", severity="warning")
            return
        if self.current_mode != name:
            self.switch_mode(name)

    # -- life --------------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._show_subtitle("starting the kernel…")
        self.set_interval(FLUSH_INTERVAL_S, self._flush_output)
        self.set_interval(PS_INTERVAL_S, self._poll)
        self._run_kernel()

    async def on_unmount(self) -> None:
        # Textual cancels workers without waiting; wait here so agents and the engine stop cleanly.
        self.workers.cancel_group(self, "kernel")
        with anyio.move_on_after(SHUTDOWN_TIMEOUT_S):
            await self._stopped.wait()

    @work(exclusive=True, group="kernel")
    async def _run_kernel(self) -> None:
        try:
            config = self.config = self.config or load_config()
            self._apply_theme(config.tui.theme)
            async with open_frontend(config, runtime=self._runtime, store=self._store, plugins=self._plugins) as door:
                kernel = door.client
                with kernel.subscribe(approver=True) as events:  # this front end answers approvals
                    self.door, self.kernel = door, kernel
                    self._started.set()
                    self._show_subtitle()
                    for request in await self.offload(kernel.approvals):  # asked before we attached
                        self.pending.setdefault(str(request["id"]), _approval(request))
                    self._show_subtitle()
                    self._next_approval()
                    self.post_message(self.KernelReady(kernel))
                    self._poll()
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
            self.door = None
            self._started.set()
            self._stopped.set()

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A synchronous client call: in-process it is a dict lookup; over the socket it is a request, which
        must not block the screen, so it runs in a worker thread."""
        if self.where == "daemon":
            return await anyio.to_thread.run_sync(lambda: fn(*args))
        return fn(*args)

    async def call(self, syscall: str, /, **payload: Any) -> Any:
        """A syscall as the user (raises AiosError; UsageError while no kernel runs)."""
        door = self.door
        if door is None:
            raise AiosError(self.kernel_error or "the kernel is not running")
        return await door.call(syscall, **payload)

    def _apply_theme(self, theme: str) -> None:
        if theme in self.available_themes:
            self.theme = theme
        else:
            log.warning("unknown theme %r in config; keeping %r", theme, self.theme)

    def _show_subtitle(self, status: str | None = None) -> None:
        if status is None:
            where = "attached to aios serve" if self.where == "daemon" else self.where
            model = str(getattr(self.kernel, "model_name", "") or "")
            status = " · ".join(part for part in (model, where) if part)
        if self.pending:
            status += f" · ⚠ {len(self.pending)} approval{'s' if len(self.pending) > 1 else ''} waiting (f8)"
        self.sub_title = status

    def _kernel_failed(self, error: str) -> None:
        self.kernel_error = error
        if not self.is_running:
            log.error("kernel: %s", error)
            return
        self.sub_title = "kernel not running"
        console = self.mode_screens.get("console")
        if console is not None and console.ready:  # else the console shows it once it is set up
            self.agent_console.append(f"error: {error}\n")
        self.notify(error, title="aios: kernel not running", severity="error", timeout=30)
        self.post_message(self.KernelFailed(error))

    def _on_kernel_event(self, event: KernelEvent) -> None:
        if not self.is_running:  # shutting down: the widgets may already be gone
            return
        pid = event.pid
        transcripts = self.transcripts
        match event:
            case OutputWritten(text=text):  # the bulk of the stream: buffered, flushed ~30 times a second
                transcripts.output(pid, text)
                return
            case ProcessStateChanged(state=state):
                if pid in self.procs:
                    self.procs[pid]["state"] = state
            case ProcessSpawned(info=info):
                transcripts.started(pid, str(info.get("agent", "")), str(info.get("goal") or ""))
                self.procs[pid] = dict(info)
            case InputSent(text=text):
                transcripts.user(pid, text)
            case TurnEnded():
                transcripts.turn_ended(pid)
            case ProcessExited(state=state, exit_code=code, error=error):
                transcripts.exited(pid, state, code, error)
                if pid in self.procs:
                    self.procs[pid]["state"] = state
            case ApprovalRequested():
                self.pending[event.request_id] = event
                self._show_subtitle()
                self._next_approval()
            case ApprovalResolved(request_id=request_id):
                self.pending.pop(request_id, None)
                self._show_subtitle()
                if self._dialog is not None and self._dialog.request.request_id == request_id:
                    self._dialog.withdraw()
            case ToolCallStarted() | ToolProgressed() | ToolCallFinished():
                self.tool_calls.on_event(event)
                line = tool_status(event)
                if line and pid in self.procs:
                    self.procs[pid]["tool"] = line
                elif line == "" and pid in self.procs:
                    self.procs[pid]["tool"] = ""
        for screen in list(self.mode_screens.values()):
            if screen.ready:
                screen.kernel_event(event)

    # -- approvals ---------------------------------------------------------------------------------------

    def action_approvals(self) -> None:
        if not self.pending:
            self.notify("no approval requests are waiting")
            return
        self._next_approval()

    def _next_approval(self) -> None:
        """Show the oldest waiting request, unless a dialog is already open (one at a time)."""
        if self._dialog is not None or not self.pending:
            return
        request = next(iter(self.pending.values()))
        dialog = self._dialog = approval_screen(request)

        def answered(answer: str | None) -> None:
            self._dialog = None
            if answer is not None:
                self.pending.pop(request.request_id, None)
                self._answer_approval(request.request_id, answer, getattr(dialog, "content", None))
            self._show_subtitle()
            self._next_approval()

        self.push_screen(dialog, answered)

    @work(group="input")
    async def _answer_approval(self, request_id: str, answer: str, content: dict[str, Any] | None = None) -> None:
        if self.kernel is None:
            return
        try:
            if content is not None:  # an MCP server's form (elicitation), accepted
                await self.kernel.approve(request_id, answer, by="tui", content=content)
            else:
                await self.kernel.approve(request_id, answer, by="tui")
        except AiosError as exc:
            self.notify(exc.one_line(), severity="warning")

    # -- refreshes -----------------------------------------------------------------------------------------

    @work(group="poll")
    async def _poll(self) -> None:
        """Accounting (tokens, TTFT, residency) changes without events: re-read it; then let the shown mode
        refresh what it shows. One at a time: a slow kernel skips refreshes rather than queueing them."""
        kernel = self.kernel
        if kernel is None or self._polling or not self.is_running:
            return
        self._polling = True
        try:
            infos = await self.offload(kernel.ps)
            for info in infos:
                tool = self.procs.get(int(info["pid"]), {}).get("tool", "")
                self.procs[int(info["pid"])] = {**info, "tool": tool}
            self.rates.append(sum(float(p.get("tokens_per_s") or 0) for p in infos if p["state"] == "waiting_llm"))
            screen = self.mode_screens.get(self.current_mode)
            if screen is not None and screen.ready and time.monotonic() - screen.refreshed_at >= screen.REFRESH_S:
                screen.refreshed_at = time.monotonic()
                await screen.refresh_data()
        except AiosError as exc:
            log.debug("refresh failed: %s", exc.one_line())
        finally:
            self._polling = False

    def _flush_output(self) -> None:
        if not self.is_running:
            return
        flushed = self.transcripts.flush()
        console = self.mode_screens.get("console")
        if console is not None and console.ready and self.selected_pid in flushed:
            self.agent_console.append(flushed[self.selected_pid])

    def watch_selected_pid(self, pid: int | None) -> None:
        console = self.mode_screens.get("console")
        if isinstance(console, ConsoleScreen) and console.ready:
            self._flush_output()
            console.show_selected()

    # -- shared actions (every mode) -----------------------------------------------------------------------

    async def ready_kernel(self) -> KernelClient | None:
        if not self._started.is_set():
            self.notify("the kernel is starting; your request runs when it is ready")
            await self._started.wait()
        if self.kernel is None:
            self.notify(self.kernel_error or "the kernel is not running", severity="error")
        return self.kernel

    @work(group="input")
    async def control(self, pid: int, what: str) -> None:
        """Kill, suspend/resume a process, or move it to the next priority class."""
        from aios.api import PRIORITIES

        kernel = await self.ready_kernel()
        if kernel is None:
            return
        info = self.procs.get(pid)
        try:
            if what == "kill":
                await kernel.kill(pid)
            elif what == "toggle_suspend" and info is not None:
                await (kernel.resume(pid) if info["state"] == "suspended" else kernel.suspend(pid))
            elif what == "renice" and info is not None:
                classes = list(PRIORITIES)
                following = classes[(classes.index(info["priority"]) + 1) % len(classes)]
                await kernel.nice(pid, following)
                self.notify(f"pid {pid}: priority {following}")
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
        self._poll()

    async def spawn(self, agent: str, goal: str = "", *, interactive: bool | None = None) -> int | None:
        kernel = await self.ready_kernel()
        if kernel is None:
            return None
        try:
            async with self._spawn_lock:
                return await kernel.spawn(agent, goal, interactive=interactive)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return None


def _approval(row: dict[str, Any]) -> ApprovalRequested:
    """A waiting request as ``approvals()`` lists it, as the event that announced it."""
    return ApprovalRequested(
        int(row.get("pid") or 0),
        request_id=str(row["id"]),
        agent=str(row.get("agent", "")),
        syscall=str(row.get("syscall", "")),
        resource=str(row.get("resource", "")),
        reason=str(row.get("reason", "")),
        timeout_s=float(row.get("timeout_s") or 0),
        form=row.get("form"),
    )


def make_app(
    *,
    config: Config | None = None,
    runtime: Any = None,
    store: Any = None,
    plugins: Any = None,
) -> AiosApp:
    """Build the app. Anything not given is made by the kernel: config from config.toml, the configured
    model, the store in the data dir, and the installed plugins (``runtime``, ``store`` and ``plugins`` are
    handed to an in-process kernel as they are: tests give a scripted runtime)."""
    return AiosApp(config=config, runtime=runtime, store=store, plugins=plugins)
