"""Console mode: the processes beside the selected agent's conversation; type to it, tokens stream in, its
tool calls listed at the side (each one collapsible: tool, progress, outcome, timing)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Collapsible, Input, Static, Tab, Tabs

from aios.errors import AiosError
from kernel.events import (
    KernelEvent,
    ProcessExited,
    ProcessSpawned,
    ProcessStateChanged,
    ToolCallFinished,
    ToolCallStarted,
    ToolProgressed,
    TurnEnded,
)
from tui.common import ModeScreen, ToolCall, markup
from tui.console import AgentConsole
from tui.process_table import ProcessTable

__all__ = ["ConsoleScreen"]

TERMINAL_STATES = frozenset({"exited", "failed"})


class ConsoleScreen(ModeScreen):
    MODE = "console"
    HELP = "Talk to agents: type to the selected one, watch tokens and tool calls stream"
    REFRESH_S = 0.5
    BINDINGS = [
        Binding("ctrl+n", "new_agent", "New agent", priority=True),
        Binding("ctrl+k", "kill", "Kill", priority=True),
        Binding("ctrl+t", "toggle_suspend", "Suspend/resume", priority=True),
        Binding("ctrl+r", "renice", "Priority", priority=True),
        Binding("ctrl+o", "app.mode('memory')", "Memory", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._cursor_target: int | None = None  # pid whose row gets the cursor once it appears
        self._shown_calls: dict[tuple[int, int], Collapsible] = {}
        self._call_bodies: dict[tuple[int, int], Static] = {}
        self._tabs: dict[int, tuple[str, str]] = {}  # pid -> (agent, label shown)

    def body(self) -> ComposeResult:
        table = ProcessTable(id="processes")
        table.border_title = "processes"
        console = AgentConsole(id="console")
        console.border_title = "console"
        calls = VerticalScroll(Static("", id="task-path"), id="tool-calls")
        calls.border_title = "task · tool calls"
        yield Horizontal(
            table,
            Vertical(
                Tabs(id="agent-tabs"),
                console,
                Input(placeholder="Message the selected agent (Enter); ctrl+n starts another", id="prompt"),
                id="agent",
            ),
            calls,
            id="main",
        )

    @property
    def process_table(self) -> ProcessTable:
        return self.query_one("#processes", ProcessTable)

    @property
    def agent_console(self) -> AgentConsole:
        return self.query_one("#console", AgentConsole)

    def on_resize(self) -> None:
        self.set_class(self.size.width >= 120, "-wide")  # the tool-call list only where there is room

    def setup(self) -> None:
        self.set_class(self.size.width >= 120, "-wide")
        self.query_one("#prompt", Input).focus()
        for info in self.aios.procs.values():
            self.process_table.upsert(info)
        self.show_selected()
        if self.aios.kernel_error:
            self.agent_console.append(f"error: {self.aios.kernel_error}\n")

    # -- events and refreshes ----------------------------------------------------------------------------

    def kernel_event(self, event: KernelEvent) -> None:
        pid = event.pid
        match event:
            case ProcessSpawned(info=info):
                self._show_process(info)
            case ProcessStateChanged(state=state) | ProcessExited(state=state):
                self.process_table.set_state(pid, state)
                if pid in self._tabs:
                    self._show_tab(pid, self._tabs[pid][0], state)
                if pid == self.aios.selected_pid:
                    self._update_title()
            case TurnEnded() if pid == self.aios.selected_pid:
                self.show_task_path(pid)
            case ToolCallStarted() | ToolProgressed() | ToolCallFinished():
                if pid == self.aios.selected_pid:
                    record = self.aios.tool_calls.calls.get((pid, event.call))
                    if record is not None:
                        self._show_call(record)
                    self._update_title()

    async def refresh_data(self) -> None:
        for info in list(self.aios.procs.values()):
            self._show_process(info)
        self._update_title()

    def _show_process(self, info: dict[str, object]) -> None:
        pid = int(str(info["pid"]))
        self.process_table.upsert(dict(info))
        self._show_tab(pid, str(info.get("agent", "")), str(info.get("state", "")))
        if pid == self._cursor_target:
            self._cursor_target = None
            self.process_table.show_pid(pid)

    def _show_tab(self, pid: int, agent: str, state: str) -> None:
        """One tab per agent (an ended one's label says so); selecting a tab selects the agent."""
        label = f"{pid} {agent}" + (" ✗" if state in TERMINAL_STATES else "")
        shown = self._tabs.get(pid)
        if shown == (agent, label):
            return
        tabs = self.query_one("#agent-tabs", Tabs)
        if shown is None:
            tabs.add_tab(Tab(label, id=f"pid-{pid}"))
            if pid == self.aios.selected_pid:  # selected before its row and tab appeared
                tabs.active = f"pid-{pid}"
        else:
            tabs.query_one(f"#pid-{pid}", Tab).label = label
        self._tabs[pid] = (agent, label)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        tab_id = event.tab.id if event.tab is not None else None
        if tab_id and tab_id.startswith("pid-") and int(tab_id[4:]) != self.aios.selected_pid:
            self.select_and_show(int(tab_id[4:]))

    def show_selected(self) -> None:
        """The selected process changed: show its conversation and tool calls."""
        pid = self.aios.selected_pid
        tabs = self.query_one("#agent-tabs", Tabs)
        if pid is not None and pid in self._tabs and tabs.active != f"pid-{pid}":
            tabs.active = f"pid-{pid}"
        self.agent_console.show("" if pid is None else self.aios.transcripts.text(pid))
        for shown in self._shown_calls.values():
            shown.remove()
        self._shown_calls.clear()
        self._call_bodies.clear()
        if pid is not None:
            for record in self.aios.tool_calls.of(pid)[-50:]:
                self._show_call(record)
            self.show_task_path(pid)
        self._update_title()

    @work(group="task-path", exclusive=True)
    async def show_task_path(self, pid: int) -> None:
        """The selected agent's task tree: the steps from its root to the active one (``task.path``)."""
        shown = self.query_one("#task-path", Static)
        try:
            trees = list(await self.aios.call("task.trees", pid=pid))
            path = list(await self.aios.call("task.path", tree=int(trees[-1]["id"]))) if trees else []
        except AiosError as exc:
            shown.update(f"[dim]{markup(exc.one_line())}[/]")
            return
        if pid != self.aios.selected_pid:
            return
        lines = [f"{'  ' * i}{'└ ' if i else ''}{markup(step['title'])[:40]}" for i, step in enumerate(path)]
        shown.update("[b]task[/]\n" + "\n".join(lines) if lines else "[dim]no task tree[/]")

    def _show_call(self, record: ToolCall) -> None:
        key = (record.pid, record.call)
        detail = (
            f"tool: {markup(record.tool)}\ncall: #{record.call}\n"
            f"progress: {markup(record.progress or '-')}\n"
            f"outcome: {markup(record.outcome or 'running')}\n"
            f"time: {'-' if record.elapsed_s is None else f'{record.elapsed_s:.3f}s'}"
        )
        shown = self._shown_calls.get(key)
        if shown is None:
            body = Static(detail)
            shown = self._shown_calls[key] = Collapsible(body, title=record.line(), collapsed=True)
            self._call_bodies[key] = body
            self.query_one("#tool-calls", VerticalScroll).mount(shown)
        else:
            shown.title = record.line()
            self._call_bodies[key].update(detail)

    def _update_title(self) -> None:
        pid = self.aios.selected_pid
        table = self.process_table
        if pid is None or pid not in table.pids:
            title = "console" if pid is None else f"console · pid {pid}"
        else:
            title = f"console · pid {pid} {table.cell(pid, 'agent')} · {table.cell(pid, 'state')}"
        self.agent_console.border_title = title
        tool = str(self.aios.procs.get(pid, {}).get("tool", "")) if pid is not None else ""
        self.agent_console.border_subtitle = tool

    def on_process_table_selected(self, message: ProcessTable.Selected) -> None:
        self.aios.selected_pid = message.pid

    # -- user actions ----------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt":
            return
        text = event.value.strip()
        event.input.clear()
        if text:
            self._send(text)

    def action_new_agent(self) -> None:
        self._new_agent()

    def action_kill(self) -> None:
        pid = self.aios.selected_pid
        if pid is None:
            self.notify("no process selected", severity="warning")
            return
        self.aios.control(pid, "kill")

    def action_toggle_suspend(self) -> None:
        if self.aios.selected_pid is not None:
            self.aios.control(self.aios.selected_pid, "toggle_suspend")

    def action_renice(self) -> None:
        if self.aios.selected_pid is not None:
            self.aios.control(self.aios.selected_pid, "renice")

    def select_and_show(self, pid: int) -> None:
        """Select ``pid`` from code (not from the table) and put the table cursor on it, now or when its row
        appears. Only this path moves the cursor: were selection changes echoed back to the cursor, a cursor
        move in flight would bounce between two rows forever."""
        self.aios.selected_pid = pid
        if pid in self.process_table.pids:
            self._cursor_target = None
            self.process_table.show_pid(pid)
        else:
            self._cursor_target = pid

    async def _spawn_chat(self) -> int:
        app = self.aios
        kernel = app.kernel
        assert kernel is not None
        agent = app.config.tui.default_agent if app.config else "chat"
        pid = await kernel.spawn(agent, interactive=True)
        self.select_and_show(pid)
        return pid

    @work(group="input")
    async def _send(self, text: str) -> None:
        app = self.aios
        kernel = await app.ready_kernel()
        if kernel is None:
            return
        try:
            # One at a time, so two quick messages with no agent alive start one agent, not two.
            async with app._spawn_lock:
                pid = app.selected_pid
                infos = await app.offload(kernel.ps)
                alive = {i["pid"] for i in infos if i["state"] not in TERMINAL_STATES and i["interactive"]}
                if pid is None or pid not in alive:
                    pid = await self._spawn_chat()
                await kernel.send(pid, text)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")

    @work(group="input")
    async def _new_agent(self) -> None:
        app = self.aios
        if await app.ready_kernel() is None:
            return
        try:
            async with app._spawn_lock:
                await self._spawn_chat()
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
        self.query_one("#prompt", Input).focus()
