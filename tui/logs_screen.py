"""Logs mode: the audit log (every syscall decision: who, what, allow/deny/ask, why), filterable by agent,
syscall and decision, and the kernel log's latest warnings and errors (``proc.audit`` and ``proc.log``,
readable by the user only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Log, Select

from aios.errors import AiosError
from tui.common import ModeScreen

__all__ = ["LogsScreen"]

AUDIT_LIMIT = 300
#: The read-only syscalls the TUI itself polls with: left out of the audit view unless filtered for.
OWN_READS = frozenset(
    {"proc.audit", "proc.log", "proc.engine", "tool.servers", "tool.list", "fs.mounts", "task.trees", "mem.namespaces"}
)


def _when(value: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(value)).strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return str(value or "")


class LogsScreen(ModeScreen):
    MODE = "logs"
    HELP = "The audit log filtered by agent, syscall and decision; the kernel log"
    BINDINGS = [
        Binding("ctrl+f", "focus_filter", "Filter", priority=True),
        Binding("ctrl+l", "clear_filters", "Clear filters", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self._last_log = 0.0

    def body(self) -> ComposeResult:
        decisions = [("allow", "allow"), ("deny", "deny"), ("ask", "ask")]
        audit: DataTable[str] = DataTable(id="audit", cursor_type="row", zebra_stripes=True)
        audit.add_columns("TIME", "PID", "AGENT", "SYSCALL", "RESOURCE", "DECISION", "REASON")
        audit.border_title = "audit log"
        log = Log(id="kernel-log", highlight=False)
        log.border_title = "kernel log (warnings and errors)"
        yield Vertical(
            Horizontal(
                Input(placeholder="agent", id="filter-agent"),
                Input(placeholder="syscall", id="filter-syscall"),
                Select(decisions, prompt="any decision", id="filter-decision"),
                id="audit-filters",
            ),
            audit,
            log,
            id="logs-main",
        )

    def setup(self) -> None:
        self.query_one("#audit", DataTable).focus()

    def filters(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        agent = self.query_one("#filter-agent", Input).value.strip()
        syscall = self.query_one("#filter-syscall", Input).value.strip()
        decision = self.query_one("#filter-decision", Select).value
        if agent:
            out["agent"] = agent
        if syscall:
            out["syscall"] = syscall
        if isinstance(decision, str):
            out["decision"] = decision
        return out

    async def refresh_data(self) -> None:
        app = self.aios
        try:
            filters = self.filters()
            rows = list(await app.call("proc.audit", limit=AUDIT_LIMIT, **filters))
            if "syscall" not in filters:
                rows = [r for r in rows if not (r.get("agent") == "user" and r.get("syscall") in OWN_READS)]
            logs = list(await app.call("proc.log", limit=200))
        except AiosError as exc:
            self.query_one("#audit", DataTable).border_subtitle = exc.one_line()
            return
        if [r.get("id") for r in rows] != [r.get("id") for r in self.rows]:
            self.rows = rows
            self._show_rows()
        log = self.query_one("#kernel-log", Log)
        for record in logs:
            if float(record["time"]) > self._last_log:
                self._last_log = float(record["time"])
                log.write_line(f"{_when(record['time'])} {record['level']:<7} {record['logger']}: {record['message']}")

    def _show_rows(self) -> None:
        table = self.query_one("#audit", DataTable)
        at_end = table.cursor_row >= table.row_count - 1
        table.clear()
        for row in self.rows:
            decision = str(row.get("decision", ""))
            style = {"allow": "green", "deny": "bold red", "ask": "yellow"}.get(decision, "")
            table.add_row(
                _when(row.get("ts") or row.get("time") or row.get("created_at")),
                str(row.get("pid") or "-"),
                str(row.get("agent", "")),
                str(row.get("syscall", "")),
                str(row.get("resource", ""))[:60],
                f"[{style}]{decision}[/]" if style else decision,
                str(row.get("reason", "") or "")[:60],
            )
        table.border_title = f"audit log · {len(self.rows)} rows" + (
            " · " + ", ".join(f"{k}={v}" for k, v in self.filters().items()) if self.filters() else ""
        )
        if at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_now()

    def on_select_changed(self, event: Select.Changed) -> None:
        self.refresh_now()

    def action_focus_filter(self) -> None:
        self.query_one("#filter-agent", Input).focus()

    def action_clear_filters(self) -> None:
        self.query_one("#filter-agent", Input).value = ""
        self.query_one("#filter-syscall", Input).value = ""
        self.query_one("#filter-decision", Select).clear()
