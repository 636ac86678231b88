"""What every mode shares: the mode list and bar, the base screen, the tool-call record fed by kernel events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from kernel.events import KernelEvent, ToolCallFinished, ToolCallStarted, ToolProgressed

__all__ = ["MODE_KEYS", "ModeBar", "ModeScreen", "ToolCall", "ToolCalls", "markup"]

#: The modes, in the order of their keys: name, key, label.
MODE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("agents", "f1", "Agents"),
    ("console", "f2", "Console"),
    ("files", "f3", "Files"),
    ("memory", "f4", "Memory"),
    ("tools", "f5", "Tools"),
    ("logs", "f6", "Logs"),
)


def markup(text: object) -> str:
    return escape(str(text))


class ModeBar(Static):
    """The modes and their keys across the top; the current one highlighted (click one to switch)."""

    def __init__(self, current: str) -> None:
        parts = []
        for name, key, label in MODE_KEYS:
            style = "reverse bold" if name == current else "dim"
            parts.append(f"[@click=app.mode('{name}')][{style}] {key.upper()} {label} [/][/]")
        parts.append("[dim] F8 Approvals[/]")
        super().__init__(" ".join(parts), classes="mode-bar")


class ModeScreen(Screen[None]):
    """A mode: a header, the mode bar, the mode's body, and a footer with the mode's keys."""

    MODE = ""
    HELP = ""
    #: Seconds between ``refresh_data`` calls while the mode is shown (each costs syscalls, audited).
    REFRESH_S = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.refreshed_at = 0.0
        #: Set up and safe to render into.
        self.ready = False

    @property
    def aios(self) -> Any:
        """The ``AiosApp`` (typed loosely: tui.app imports the modes, not the other way round)."""
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield ModeBar(self.MODE)
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        # Widgets composed inside containers are mounted by those containers, which may not have happened
        # yet when the screen's Mount arrives: set up after a refresh, once they all are.
        self.call_after_refresh(self._setup)

    def _setup(self) -> None:
        try:
            self.setup()
        except NoMatches:  # still mounting: again after the next refresh
            self.call_after_refresh(self._setup)
            return
        self.ready = True
        self.refresh_now()

    def setup(self) -> None:
        """Once the mode's widgets are all mounted: focus, first render."""

    def kernel_event(self, event: KernelEvent) -> None:
        """A kernel event, as it happens (keep it cheap: batch screen work in ``refresh_data``)."""

    async def refresh_data(self) -> None:
        """Called every half second while this mode is shown: re-read what changes without events."""

    def on_screen_resume(self) -> None:
        self.refresh_now()

    @work(group="refresh", exclusive=True)
    async def refresh_now(self) -> None:
        """Refresh at once (the mode came into view, a filter changed)."""
        self.refreshed_at = time.monotonic()
        if self.ready:
            await self.refresh_data()


@dataclass
class ToolCall:
    """One tool call as its kernel events told it."""

    pid: int
    call: int
    tool: str
    started: float = field(default_factory=time.monotonic)
    progress: str = ""
    outcome: str = ""  # "" while running; ok or an error kind
    is_error: bool = False
    elapsed_s: float | None = None

    @property
    def running(self) -> bool:
        return not self.outcome

    def line(self) -> str:
        if self.running:
            took = f"{time.monotonic() - self.started:.1f}s"
            return f"⚙ {self.tool} … {took}" + (f" · {self.progress}" if self.progress else "")
        mark = "✗" if self.is_error else "✓"
        return f"{mark} {self.tool} {self.outcome} {self.elapsed_s or 0:.2f}s"


class ToolCalls:
    """Every tool call seen, by (pid, call number), in the order they started."""

    def __init__(self, keep: int = 2000) -> None:
        self.calls: dict[tuple[int, int], ToolCall] = {}
        self._keep = keep

    def on_event(self, event: KernelEvent) -> ToolCall | None:
        match event:
            case ToolCallStarted(pid=pid, call=call, tool=tool):
                started = self.calls[(pid, call)] = ToolCall(pid, call, tool)
                if len(self.calls) > self._keep:
                    del self.calls[next(iter(self.calls))]
                return started
            case ToolProgressed(pid=pid, call=call, progress=done, total=total, message=message):
                record = self.calls.get((pid, call))
                if record is not None:
                    amount = f"{done:g}/{total:g}" if total else f"{done:g}"
                    record.progress = amount + (f" {message}" if message else "")
                return record
            case ToolCallFinished(pid=pid, call=call, is_error=is_error, outcome=outcome, elapsed_s=elapsed):
                record = self.calls.get((pid, call))
                if record is not None:
                    record.outcome, record.is_error, record.elapsed_s = outcome, is_error, elapsed
                return record
        return None

    def of(self, pid: int) -> list[ToolCall]:
        return [c for (p, _), c in self.calls.items() if p == pid]


def info_get(info: dict[str, Any], key: str, default: str = "-") -> str:
    value = info.get(key)
    return default if value in (None, "") else str(value)
