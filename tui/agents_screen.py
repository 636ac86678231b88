"""Agents mode: a live process table like ``top``, the process tree, and the shared engine's panel (batch
width, tokens/s sparkline, KV tokens held, swaps and restores). Keys spawn, kill, suspend/resume, renice."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Sparkline, Static, Tree
from textual.widgets.data_table import ColumnKey

from aios.errors import AiosError
from tui.common import ModeScreen, info_get, markup

__all__ = ["AGENT_COLUMNS", "AgentsScreen", "SpawnDialog"]

#: Column keys and labels of the top-like table.
AGENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("pid", "PID"),
    ("os_pid", "OS PID"),
    ("ppid", "PPID"),
    ("agent", "AGENT"),
    ("state", "STATE"),
    ("priority", "CLASS"),
    ("rate", "TOK/S"),
    ("tokens", "USED/BUDGET"),
    ("ttft", "TTFT"),
    ("context", "CONTEXT"),
    ("rss", "RSS"),
    ("cpu", "CPU"),
    ("tool", "TOOL"),
)

#: How the engine's residency reads in the table.
RESIDENCY = {
    "resident": "resident",
    "swapped_ram": "swapped (ram)",
    "swapped_file": "swapped (disk)",
    "dropped": "dropped",
    "remote": "remote",
}


def agent_cells(info: dict[str, Any]) -> dict[str, str]:
    used = int(info.get("prompt_tokens") or 0) + int(info.get("completion_tokens") or 0)
    budget = info.get("token_budget")
    rate = info.get("tokens_per_s")
    ttft = info.get("ttft_s")
    residency = str(info.get("residency") or "none")
    tokens = info.get("context_tokens")
    context = "-" if residency == "none" else RESIDENCY.get(residency, residency) + (f" {tokens}" if tokens else "")
    rss, cpu = info.get("rss_kb"), info.get("cpu_s")
    return {
        "pid": str(info["pid"]),
        "os_pid": str(info.get("os_pid") or "-"),
        "rss": "-" if not rss else f"{int(rss) / 1024:.0f}M",
        "cpu": "-" if cpu is None else f"{float(cpu):.1f}s",
        "ppid": str(info.get("ppid") or "-"),
        "agent": info_get(info, "agent"),
        "state": info_get(info, "state"),
        "priority": info_get(info, "priority"),
        "rate": "-" if not rate else f"{float(rate):.0f}",
        "tokens": f"{used}/{budget}" if budget else str(used),
        "ttft": "-" if ttft is None else f"{float(ttft) * 1000:.0f}ms",
        "context": context,
        "tool": str(info.get("tool") or "")[:30],
    }


class SpawnDialog(ModalScreen[tuple[str, str] | None]):
    """Pick an agent from the plugins, type a goal: (agent, goal), or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, agents: dict[str, str], default: str) -> None:
        super().__init__()
        self.agents = agents
        self.default = default if default in agents else next(iter(agents), "")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Spawn an agent", classes="dialog-title")
            yield Select([(f"{n} — {d}"[:70], n) for n, d in self.agents.items()], value=self.default, id="spawn-agent")
            yield Input(placeholder="goal (empty: an interactive agent)", id="spawn-goal")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Spawn", id="spawn-ok", variant="primary")
                yield Button("Cancel", id="spawn-cancel")

    def on_mount(self) -> None:
        self.query_one("#spawn-goal", Input).focus()

    def _ok(self) -> None:
        agent = self.query_one("#spawn-agent", Select).value
        if isinstance(agent, str):
            self.dismiss((agent, self.query_one("#spawn-goal", Input).value.strip()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._ok()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "spawn-ok":
            self._ok()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AgentsScreen(ModeScreen):
    MODE = "agents"
    HELP = "Processes like top, the process tree and the engine: spawn, kill, suspend, renice"
    BINDINGS = [
        Binding("n", "spawn", "Spawn"),
        Binding("k", "kill", "Kill"),
        Binding("s", "toggle_suspend", "Suspend/resume"),
        Binding("r", "renice", "Renice"),
        Binding("enter", "console", "Console"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[int, dict[str, str]] = {}
        self._tree_shape: tuple[tuple[int, int, str, str], ...] = ()

    def body(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="agents-table", cursor_type="row", zebra_stripes=True)
        for key, label in AGENT_COLUMNS:
            table.add_column(label, key=key)
        table.border_title = "processes"
        tree: Tree[int] = Tree("processes", id="proc-tree")
        tree.border_title = "process tree"
        tree.show_root = False
        engine = Vertical(Static("", id="engine-stats"), Sparkline([0.0], id="engine-rate"), id="engine")
        engine.border_title = "engine"
        yield Horizontal(table, Vertical(tree, engine, id="agents-side"), id="agents-main")

    @property
    def table(self) -> DataTable[str]:
        return self.query_one("#agents-table", DataTable)

    def setup(self) -> None:
        self._render_rows()
        self.table.focus()

    async def refresh_data(self) -> None:
        app = self.aios
        try:
            app.engine_stats = dict(await app.call("proc.engine"))
        except AiosError as exc:
            app.engine_stats = {"error": exc.one_line()}
        self._render_rows()

    def _render_rows(self) -> None:
        table = self.table
        procs = self.aios.procs
        for pid, info in sorted(procs.items()):
            cells = agent_cells(info)
            shown = self._shown.get(pid)
            if shown is None:
                table.add_row(*(cells[k] for k, _ in AGENT_COLUMNS), key=str(pid))
                self._shown[pid] = cells
                continue
            for key, value in cells.items():
                if shown.get(key) != value:
                    grow = len(value) > table.columns[ColumnKey(key)].content_width
                    table.update_cell(str(pid), key, value, update_width=grow)
                    shown[key] = value
        self._render_tree(procs)
        self._render_engine()

    def _render_tree(self, procs: dict[int, dict[str, Any]]) -> None:
        shape = tuple(
            (pid, int(i.get("ppid") or 0), str(i.get("agent", "")), str(i.get("state", "")))
            for pid, i in sorted(procs.items())
        )
        if shape == self._tree_shape:
            return
        self._tree_shape = shape
        tree = self.query_one("#proc-tree", Tree)
        tree.clear()
        nodes: dict[int, Any] = {}
        for pid, ppid, agent, state in shape:
            parent = nodes.get(ppid, tree.root)
            nodes[pid] = parent.add(f"{pid} {markup(agent)} [dim]{markup(state)}[/]", data=pid, expand=True)
        tree.root.expand_all()

    def _render_engine(self) -> None:
        stats = self.aios.engine_stats
        if "error" in stats:
            text = f"[red]{markup(stats['error'])}[/]"
        elif stats:
            contexts = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("contexts", {}).items())) or "none"
            text = (
                f"model {markup(stats.get('model'))}\n"
                f"batch {stats.get('running', 0)}/{stats.get('max_batch') or '-'} · "
                f"{float(stats.get('tokens_per_s') or 0):.0f} tok/s\n"
                f"KV {stats.get('kv_tokens', 0)} tokens · contexts {markup(contexts)}\n"
                f"swaps {stats.get('swaps', 0)} · restores {stats.get('restores', 0)} · steps {stats.get('steps', 0)}"
            )
        else:
            text = "waiting for the kernel…"
        self.query_one("#engine-stats", Static).update(text)
        self.query_one("#engine-rate", Sparkline).data = list(self.aios.rates)

    # -- actions -----------------------------------------------------------------------------------------

    def _cursor_pid(self) -> int | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if key is None else int(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.aios.selected_pid = int(event.row_key.value)

    def _act(self, what: str) -> None:
        pid = self._cursor_pid()
        if pid is None:
            self.notify("no process selected", severity="warning")
            return
        self.aios.control(pid, what)

    def action_kill(self) -> None:
        self._act("kill")

    def action_toggle_suspend(self) -> None:
        self._act("toggle_suspend")

    def action_renice(self) -> None:
        self._act("renice")

    def action_console(self) -> None:
        pid = self._cursor_pid()
        if pid is not None:
            self.aios.selected_pid = pid
        self.aios.action_mode("console")

    @work(group="input")
    async def action_spawn(self) -> None:
        app = self.aios
        kernel = await app.ready_kernel()
        if kernel is None:
            return
        agents = await app.offload(kernel.agents)
        default = app.config.tui.default_agent if app.config else "chat"
        choice = await app.push_screen_wait(SpawnDialog(agents, default))
        if choice is None:
            return
        agent, goal = choice
        pid = await app.spawn(agent, goal, interactive=None if goal else True)
        if pid is not None:
            self.notify(f"pid {pid}: {agent} started")
