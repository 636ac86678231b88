"""The approval dialog: an agent's syscall needs the user's answer; the agent waits in ``waiting_approval``.

Returns ``allow_once``, ``allow_always``, ``deny`` or ``deny_always`` (``None`` when the request went away
first: it timed out, was answered elsewhere, or its process was killed).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from kernel.events import ApprovalRequested

__all__ = ["ApprovalScreen"]

CHOICES = (
    ("allow_once", "Allow once [o]", "success"),
    ("allow_always", "Always for this agent [a]", "primary"),
    ("deny", "Deny [d]", "warning"),
    ("deny_always", "Deny always [n]", "error"),
)


class ApprovalScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    ApprovalScreen {
        align: center middle;
    }
    #approval {
        width: 80;
        max-width: 95%;
        height: auto;
        border: thick $warning;
        background: $surface;
        padding: 1 2;
    }
    #approval-title {
        text-style: bold;
        margin-bottom: 1;
    }
    #approval-buttons {
        height: auto;
        margin-top: 1;
    }
    #approval-buttons Button {
        margin-right: 1;
    }
    """

    BINDINGS = [
        Binding("o", "answer('allow_once')", "Allow once"),
        Binding("a", "answer('allow_always')", "Always"),
        Binding("d", "answer('deny')", "Deny"),
        Binding("n", "answer('deny_always')", "Deny always"),
        Binding("escape", "answer('deny')", "Deny"),
    ]

    def __init__(self, request: ApprovalRequested) -> None:
        super().__init__()
        self.request = request
        self.gone = False
        self._dismissing = False

    def compose(self) -> ComposeResult:
        r = self.request
        wait = f"denied in {r.timeout_s:g}s without an answer" if r.timeout_s else "waits for your answer"
        with Vertical(id="approval"):
            yield Label(f"pid {r.pid} ({r.agent}) asks for approval", id="approval-title")
            yield Static(f"{r.syscall} → {r.resource}", id="approval-resource")
            yield Static(r.reason, id="approval-reason")
            # A third-party plugin's first run (kernel: plugin.approve): none of its code runs before the answer.
            held = "has not started" if r.syscall == "plugin.approve" else "is suspended meanwhile"
            yield Static(f"The agent {held}; it is {wait}.", id="approval-note")
            with Horizontal(id="approval-buttons"):
                for answer, label, variant in CHOICES:
                    yield Button(label, id=answer, variant=variant)  # type: ignore[arg-type]

    def withdraw(self) -> None:
        """The request went away: close now if on top, else as soon as this dialog comes back on top."""
        self.gone = True
        if self.is_current:
            self._close(None)

    def on_screen_resume(self) -> None:
        if self.gone:
            self._close(None)

    def _close(self, answer: str | None) -> None:
        if not self._dismissing:  # a key press and a withdrawal may both arrive; dismiss once
            self._dismissing = True
            self.dismiss(answer)

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()  # the safe default for a stray Enter

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._close(event.button.id)

    def action_answer(self, answer: str) -> None:
        self._close(answer)
