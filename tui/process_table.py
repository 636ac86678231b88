"""The process table: one row per kernel process, keyed by pid."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

__all__ = ["COLUMNS", "ProcessTable"]

#: Column keys and labels, in display order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("pid", "PID"),
    ("agent", "AGENT"),
    ("state", "STATE"),
    ("priority", "PRIO"),
    ("tokens", "TOKENS"),
    ("rate", "TOK/S"),
    ("ttft", "TTFT"),
    ("context", "CONTEXT"),
)

#: How the engine's residency reads in the table.
_CONTEXT = {
    "resident": "resident",
    "swapped_ram": "swapped (ram)",
    "swapped_file": "swapped (file)",
    "dropped": "dropped",
    "remote": "remote",
    "none": "-",
}


def _cells(info: dict[str, Any]) -> dict[str, str]:
    ttft = info.get("ttft_s")
    tokens = int(info.get("prompt_tokens") or 0) + int(info.get("completion_tokens") or 0)
    rate = info.get("tokens_per_s")
    residency = str(info.get("residency") or "none")
    return {
        "pid": str(info["pid"]),
        "agent": str(info.get("agent", "")),
        "state": str(info.get("state", "")),
        "priority": str(info.get("priority", "")),
        "tokens": str(tokens),
        "rate": "-" if not rate else f"{rate:.0f}",
        "ttft": "-" if ttft is None else f"{ttft * 1000:.0f}ms",
        "context": _CONTEXT.get(residency, residency),
    }


class ProcessTable(DataTable[str]):
    """Shows ``kernel.ps()`` rows; moving the cursor onto a row posts ``ProcessTable.Selected``."""

    class Selected(Message):
        """The user moved the cursor onto a process."""

        def __init__(self, pid: int) -> None:
            super().__init__()
            self.pid = pid

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._shown: dict[int, dict[str, str]] = {}

    def on_mount(self) -> None:
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    @property
    def pids(self) -> list[int]:
        return list(self._shown)

    def upsert(self, info: dict[str, Any]) -> None:
        """Add the process's row, or update the cells that changed."""
        pid = int(info["pid"])
        cells = _cells(info)
        shown = self._shown.get(pid)
        if shown is None:
            self.add_row(*(cells[key] for key, _ in COLUMNS), key=str(pid))
            self._shown[pid] = cells
            return
        for key, value in cells.items():
            if shown.get(key) != value:
                self.update_cell(str(pid), key, value, update_width=self.wider(key, value))
                shown[key] = value

    def set_state(self, pid: int, state: str) -> None:
        shown = self._shown.get(pid)
        if shown is not None and shown["state"] != state:
            self.update_cell(str(pid), "state", state, update_width=self.wider("state", state))
            shown["state"] = state

    def wider(self, column: str, value: str) -> bool:
        """Whether ``value`` needs the column to grow: re-measuring columns on every accounting refresh costs
        a relayout of the table each time, so cells that fit are updated in place."""
        return len(value) > self.columns[ColumnKey(column)].content_width

    def cell(self, pid: int, column: str) -> str:
        """The text shown for ``pid`` in ``column`` (read back from the table)."""
        return str(self.get_cell(str(pid), column))

    def show_pid(self, pid: int) -> None:
        """Put the cursor on ``pid``'s row, if it has one."""
        if pid in self._shown:
            row = self.get_row_index(str(pid))
            if row != self.cursor_row:
                self.move_cursor(row=row)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.post_message(self.Selected(int(event.row_key.value)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(self.Selected(int(event.row_key.value)))
