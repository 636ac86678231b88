"""The approval dialog: an agent's syscall needs the user's answer; the agent waits in ``waiting_approval``.

Returns ``allow_once``, ``allow_always``, ``deny`` or ``deny_always`` (``None`` when the request went away
first: it timed out, was answered elsewhere, or its process was killed).

An MCP server's elicitation (``tool.elicit``, the request carries a ``form`` schema) gets ``ElicitScreen``
instead: a form generated from the schema's flat properties (Input for strings and numbers, Switch for
booleans, Select for enums); Submit returns ``accept`` with ``content`` set (checked against the schema first:
a bad value is shown and the form stays open), Decline ``decline``, Cancel/Escape ``cancel``. Use
``approval_screen(request)`` to get the right one.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import Mount
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch

from kernel.events import ApprovalRequested

__all__ = ["ApprovalScreen", "ElicitScreen", "approval_screen", "form_content"]

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


def approval_screen(request: ApprovalRequested) -> ApprovalScreen:
    """The dialog for a request: a form for an MCP server's elicitation, else the allow/deny choice."""
    return ElicitScreen(request) if request.form is not None else ApprovalScreen(request)


def _kind(prop: dict[str, Any]) -> str:
    if "enum" in prop or "oneOf" in prop:
        return "enum"
    kind = prop.get("type", "string")
    return kind if kind in ("string", "integer", "number", "boolean") else "string"


def _options(prop: dict[str, Any]) -> list[tuple[str, Any]]:
    if "oneOf" in prop:
        return [(str(o.get("title", o.get("const"))), o.get("const")) for o in prop["oneOf"] if "const" in o]
    names = prop.get("enumNames") or [str(v) for v in prop["enum"]]
    return [(str(n), v) for n, v in zip(names, prop["enum"], strict=False)]


def form_content(schema: dict[str, Any], raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Typed content from the form's raw values (numbers parsed; empty optional fields left out), and a
    one-line reason it does not fit the schema, or None."""
    properties: dict[str, Any] = schema.get("properties") or {}
    content: dict[str, Any] = {}
    for name, value in raw.items():
        kind = _kind(properties.get(name, {}))
        if isinstance(value, str) and kind in ("integer", "number"):
            text = value.strip()
            if not text:
                continue
            try:
                value = int(text) if kind == "integer" else float(text)
            except ValueError:
                value = text  # left as typed: the schema check below names the field
        elif isinstance(value, str) and not value and kind == "string" and name not in schema.get("required", ()):
            continue
        content[name] = value
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(content))
    except jsonschema.exceptions.SchemaError as exc:
        return content, f"the server's form is invalid: {exc.message}"
    if error is None:
        return content, None
    where = ".".join(str(p) for p in error.absolute_path) or "form"
    return content, f"{where}: {error.message}"


class ElicitScreen(ApprovalScreen, inherit_bindings=False):
    """An MCP server asks the user to fill a form during a tool call."""

    DEFAULT_CSS = """
    ElicitScreen {
        align: center middle;
    }
    #approval {
        max-height: 100%;
        overflow-y: auto;
        padding: 0 1;
    }
    #approval-title {
        margin-bottom: 0;
    }
    .elicit-row {
        height: auto;
        margin-top: 1;
    }
    .elicit-label {
        width: 22;
        padding-right: 1;
    }
    .elicit-row Input, .elicit-row Select {
        width: 1fr;
    }
    .elicit-row Switch {
        height: 1;
        border: none;
        padding: 0;
    }
    #elicit-error {
        color: $error;
        height: auto;
    }
    """

    BINDINGS = [
        Binding("escape", "answer('cancel')", "Cancel"),
        Binding("ctrl+s", "submit", "Submit"),
    ]

    def __init__(self, request: ApprovalRequested) -> None:
        super().__init__(request)
        self.schema: dict[str, Any] = dict(request.form or {})
        self.properties: dict[str, dict[str, Any]] = dict(self.schema.get("properties") or {})
        self.fields: dict[str, str] = {name: f"field-{i}" for i, name in enumerate(self.properties)}
        self.content: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        r = self.request
        required = set(self.schema.get("required") or ())
        server = r.resource.removeprefix("mcp:")
        with Vertical(id="approval"):
            who = f"pid {r.pid} ({r.agent})" if r.pid else r.agent
            yield Label(f"MCP server {server} asks ({who})", id="approval-title")
            yield Static(r.reason, id="approval-reason")
            for name, prop in self.properties.items():
                title = str(prop.get("title") or name) + (" *" if name in required else "")
                wid, kind, default = self.fields[name], _kind(prop), prop.get("default")
                desc = str(prop.get("description") or "")
                with Horizontal(classes="elicit-row"):
                    yield Label(title, classes="elicit-label")
                    if kind == "boolean":
                        yield Switch(value=bool(default), id=wid, tooltip=desc or None)
                    elif kind == "enum":
                        options = _options(prop)
                        value = default if default in [v for _, v in options] else Select.BLANK
                        yield Select(options, id=wid, value=value, compact=True, tooltip=desc or None)
                    else:
                        yield Input(
                            "" if default is None else str(default),
                            placeholder=desc or kind,
                            type="integer" if kind == "integer" else "number" if kind == "number" else "text",
                            id=wid,
                            valid_empty=True,
                            compact=True,
                            tooltip=desc or None,
                        )
            yield Static("", id="elicit-error")
            with Horizontal(id="approval-buttons"):
                yield Button("Submit ^s", id="accept", variant="success", compact=True)
                yield Button("Decline", id="decline", variant="warning", compact=True)
                yield Button("Cancel esc", id="cancel", variant="error", compact=True)

    # Textual also runs the base class's handlers unless prevent_default(): the form has no "deny" button,
    # and "accept" must go through the schema check.
    def on_mount(self, event: Mount | None = None) -> None:
        if event is not None:
            event.prevent_default()
        first = next(iter(self.fields.values()), None)
        self.query_one(f"#{first}" if first else "#cancel").focus()

    def raw_values(self) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        for name, wid in self.fields.items():
            widget = self.query_one(f"#{wid}")
            if isinstance(widget, Switch):
                raw[name] = widget.value
            elif isinstance(widget, Select):
                if widget.value is not Select.BLANK:
                    raw[name] = widget.value
            elif isinstance(widget, Input):
                raw[name] = widget.value
        return raw

    def action_submit(self) -> None:
        content, problem = form_content(self.schema, self.raw_values())
        if problem is not None:
            self.query_one("#elicit-error", Static).update(problem)
            return
        self.content = content
        self._close("accept")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        event.prevent_default()
        if event.button.id == "accept":
            self.action_submit()
        else:
            self._close(event.button.id)
