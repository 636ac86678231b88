"""Tools mode: the MCP servers with their state and tools, catalog search, and plans: compose one (add the
highlighted tool as a step, or paste plan JSON), dispatch it as a ``tool.plan`` syscall, and watch it run as
a live DAG (each step's state, timer, result or error, the parallel width) from the kernel's tool events;
cancel it while it runs."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static, TextArea
from textual.worker import Worker

from aios.errors import AiosError
from kernel.events import KernelEvent, ToolCallFinished, ToolCallStarted, ToolProgressed
from tui.common import ModeScreen, markup

__all__ = ["PlanRun", "PlanStep", "ToolsScreen", "step_skeleton"]

EXAMPLE_PLAN = '{"steps": [\n  {"id": "now", "tool": "time.now", "args": {"timezone": "UTC"}}\n]}'


@dataclass
class PlanStep:
    id: str
    tool: str
    deps: list[str]
    level: int = 0
    state: str = "waiting"  # waiting, running, ok, error, skipped, cancelled
    call: int | None = None
    started: float | None = None
    elapsed_s: float | None = None
    progress: str = ""
    result: str = ""

    def timer(self) -> str:
        if self.elapsed_s is not None:
            return f"{self.elapsed_s:.2f}s"
        if self.started is not None:
            return f"{time.monotonic() - self.started:.1f}s"
        return "-"


@dataclass
class PlanRun:
    """A dispatched plan as the TUI watches it: steps matched to the user's tool calls as they start."""

    steps: dict[str, PlanStep]
    state: str = "running"  # running, done, failed, cancelled
    started: float = field(default_factory=time.monotonic)
    width: int = 0
    error: str = ""
    ended: float | None = None

    @classmethod
    def from_steps(cls, steps: list[dict[str, Any]]) -> PlanRun:
        out: dict[str, PlanStep] = {}
        for step in steps:
            deps = [str(d) for d in step.get("deps", [])]
            level = 1 + max((out[d].level for d in deps if d in out), default=-1)
            out[str(step["id"])] = PlanStep(str(step["id"]), str(step["tool"]), deps, level)
        return cls(out)

    def took(self) -> str:
        return f"{(self.ended or time.monotonic()) - self.started:.1f}s"

    @property
    def running(self) -> int:
        return sum(1 for s in self.steps.values() if s.state == "running")

    def on_event(self, event: KernelEvent) -> bool:
        """A tool event of the user's process: match it to a step. True if anything changed."""
        match event:
            case ToolCallStarted(call=call, tool=tool):
                ready = [
                    s
                    for s in self.steps.values()
                    if s.state == "waiting"
                    and s.tool == tool
                    and all(self.steps[d].state == "ok" for d in s.deps if d in self.steps)
                ]
                candidates = ready or [s for s in self.steps.values() if s.state == "waiting" and s.tool == tool]
                if not candidates:
                    return False
                step = candidates[0]
                step.state, step.call, step.started = "running", call, time.monotonic()
                self.width = max(self.width, self.running)
                return True
            case ToolProgressed(call=call, progress=done, total=total, message=message):
                for step in self.steps.values():
                    if step.call == call and step.state == "running":
                        step.progress = (f"{done:g}/{total:g}" if total else f"{done:g}") + (
                            f" {message}" if message else ""
                        )
                        return True
            case ToolCallFinished(call=call, is_error=is_error, outcome=outcome, elapsed_s=elapsed):
                for step in self.steps.values():
                    if step.call == call and step.state == "running":
                        step.state = "error" if is_error else "ok"
                        step.elapsed_s = elapsed
                        if is_error:
                            step.result = outcome
                        return True
        return False

    def finish(self, result: dict[str, Any]) -> None:
        """The plan's answer: each step's final result."""
        for sid, out in (result.get("results") or {}).items():
            step = self.steps.get(sid)
            if step is None:
                continue
            if out.get("skipped"):
                step.state = "skipped"
            else:
                step.state = "error" if out.get("is_error") else "ok"
            step.result = str(out.get("text", ""))[:200]
            if "start_s" in out:
                step.elapsed_s = float(out["end_s"]) - float(out["start_s"])
        self.state = "failed" if any(s.state in ("error", "skipped") for s in self.steps.values()) else "done"
        self.ended = time.monotonic()

    def cancel(self) -> None:
        self.state = "cancelled"
        self.ended = self.ended or time.monotonic()
        for step in self.steps.values():
            if step.state in ("waiting", "running"):
                step.state = "cancelled"


def step_skeleton(tool: dict[str, Any], taken: set[str]) -> dict[str, Any]:
    """A plan step for ``tool`` with its schema's required arguments as placeholders."""
    schema = tool.get("input_schema") or tool.get("inputSchema") or tool.get("schema") or {}
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    defaults = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}
    args = {
        name: props.get(name, {}).get("default", defaults.get(str(props.get(name, {}).get("type")), None))
        for name in (schema.get("required", []) if isinstance(schema, dict) else [])
    }
    base = str(tool["name"]).split(".")[-1].replace("-", "_")[:20] or "step"
    sid, n = base, 2
    while sid in taken:
        sid, n = f"{base}{n}", n + 1
    return {"id": sid, "tool": tool["name"], "args": args}


def coerce(value: str, schema: dict[str, Any]) -> Any:
    """A form field's text as its JSON-schema type wants it (UsageError when it is not one)."""
    from aios.errors import UsageError

    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            if value.strip().lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return value.strip().lower() in ("true", "yes", "1")
        if kind in ("array", "object"):
            parsed = json.loads(value)
            if not isinstance(parsed, list if kind == "array" else dict):
                raise ValueError(value)
            return parsed
    except ValueError:
        raise UsageError(f"{value!r} is not a{'n' if str(kind)[0] in 'aio' else ''} {kind}") from None
    return value


class ArgsForm(ModalScreen[dict[str, Any] | None]):
    """A form generated from a tool's JSON schema: one field per argument (required ones marked); returns the
    arguments, typed, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, tool: dict[str, Any]) -> None:
        super().__init__()
        self.tool = tool
        schema = tool.get("input_schema") or tool.get("inputSchema") or {}
        self.props: dict[str, dict[str, Any]] = dict(schema.get("properties") or {})
        self.required = set(schema.get("required") or [])

    def compose(self) -> ComposeResult:
        fields: list[Any] = [Label(f"Add {self.tool['name']} to the plan", classes="dialog-title")]
        for name, prop in self.props.items():
            mark = " *" if name in self.required else ""
            hint = f"{prop.get('type', 'any')}" + (f" · {prop['description']}" if prop.get("description") else "")
            fields.append(Label(f"{name}{mark}  [dim]{markup(hint[:80])}[/]"))
            default = prop.get("default")
            value = "" if default is None else (json.dumps(default) if not isinstance(default, str) else default)
            fields.append(Input(value=value, id=f"arg-{name}"))
        fields.append(Static("", id="args-error"))
        fields.append(
            Horizontal(
                Button("Add [Enter]", id="args-ok", variant="primary"),
                Button("Cancel", id="args-cancel"),
                classes="dialog-buttons",
            )
        )
        yield VerticalScroll(*fields, classes="dialog")

    def on_mount(self) -> None:
        self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        inputs = self.query(Input)
        if inputs:
            inputs.first().focus()

    def _ok(self) -> None:
        from aios.errors import UsageError

        args: dict[str, Any] = {}
        try:
            for name, prop in self.props.items():
                text = self.query_one(f"#arg-{name}", Input).value
                if text == "":
                    if name in self.required:
                        raise UsageError(f"{name} is required")
                    continue
                args[name] = coerce(text, prop)
        except UsageError as exc:
            self.query_one("#args-error", Static).update(f"[red]{markup(exc.one_line())}[/]")
            return
        self.dismiss(args)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._ok()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "args-ok":
            self._ok()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class GoalDialog(ModalScreen[str | None]):
    """One line of text: what the planner should write a plan for."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        yield Vertical(
            Label("What should the plan do? (the planner writes it from the catalog)", classes="dialog-title"),
            Input(placeholder="e.g. what time is it in Tokyo and in Lisbon", id="goal"),
            classes="dialog",
        )

    def on_mount(self) -> None:
        self.call_after_refresh(lambda: self.query_one("#goal", Input).focus())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


_STATE_STYLE = {
    "waiting": "dim",
    "running": "bold yellow",
    "ok": "green",
    "error": "bold red",
    "skipped": "magenta",
    "cancelled": "dim red",
}


class ToolsScreen(ModeScreen):
    MODE = "tools"
    HELP = "MCP servers and tools, catalog search; compose, dispatch, watch and cancel tool plans"
    REFRESH_S = 2.0
    BINDINGS = [
        Binding("ctrl+a", "add_step", "Add tool to plan", priority=True),
        Binding("ctrl+w", "write_plan", "Planner writes it", priority=True),
        Binding("ctrl+g", "run_plan", "Run plan", priority=True),
        Binding("ctrl+x", "cancel_plan", "Cancel plan", priority=True),
        Binding("ctrl+f", "focus_search", "Search tools", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.tools: list[dict[str, Any]] = []
        self.shown_tools: list[dict[str, Any]] = []
        self.plan: PlanRun | None = None
        self.plan_result: dict[str, Any] | None = None
        self._plan_worker: Worker[None] | None = None
        self._servers_seen: object = None

    def body(self) -> ComposeResult:
        servers: DataTable[str] = DataTable(id="servers", cursor_type="row")
        servers.add_columns("SERVER", "STATE", "TOOLS", "LATENCY", "TRANSPORT", "RESTARTS")
        servers.border_title = "servers"
        tools: DataTable[str] = DataTable(id="tools", cursor_type="row", zebra_stripes=True)
        tools.add_columns("TOOL", "DESCRIPTION")
        tools.border_title = "tools"
        editor = TextArea(EXAMPLE_PLAN, language="json", id="plan-json")
        editor.border_title = "plan (JSON) · ctrl+g runs it"
        dag: DataTable[str] = DataTable(id="dag", cursor_type="row")
        dag.add_columns("STEP", "TOOL", "AFTER", "STATE", "TIME", "RESULT")
        dag.border_title = "plan"
        yield Horizontal(
            Vertical(
                servers,
                Input(placeholder="search the tool catalog (Enter)", id="tool-search"),
                tools,
                id="tools-left",
            ),
            Vertical(
                editor,
                dag,
                Static("", id="plan-status"),
                id="tools-right",
            ),
            id="tools-main",
        )

    def on_mount(self) -> None:
        self.set_interval(0.25, self._tick)

    def setup(self) -> None:
        self.query_one("#tools", DataTable).focus()

    def _tick(self) -> None:
        """Running steps' timers move between events."""
        if self.plan is not None and self.plan.state == "running":
            self._show_plan()

    async def refresh_data(self) -> None:
        app = self.aios
        try:
            servers = list((await app.call("tool.servers"))["servers"])
            if not self.tools:
                self.tools = list((await app.call("tool.list", schemas=True))["tools"])
                self._show_tools(self.tools)
        except AiosError as exc:
            self.query_one("#plan-status", Static).update(f"[red]{markup(exc.one_line())}[/]")
            return
        latency = self._latencies()
        if (servers, latency) != self._servers_seen:
            self._servers_seen = (servers, latency)
            table = self.query_one("#servers", DataTable)
            table.clear()
            for s in servers:
                state = str(s.get("state", ""))
                style = "green" if state == "ready" else "red" if state in ("failed", "error") else "yellow"
                table.add_row(
                    str(s.get("name", "")),
                    f"[{style}]{markup(state)}[/]",
                    str(s.get("tools", 0)),
                    latency.get(str(s.get("name", "")), "-"),
                    str(s.get("transport", "")),
                    str(s.get("restarts", 0)),
                )

    def _latencies(self) -> dict[str, str]:
        """Mean time of the tool calls seen finishing, per server (any process's, from the kernel's events)."""
        times: dict[str, list[float]] = {}
        for call in self.aios.tool_calls.calls.values():
            if call.elapsed_s is not None and call.outcome == "ok":
                times.setdefault(call.tool.split(".", 1)[0], []).append(call.elapsed_s)
        return {server: f"{sum(v) / len(v) * 1000:.0f}ms" for server, v in times.items()}

    def _show_tools(self, tools: list[dict[str, Any]]) -> None:
        self.shown_tools = tools
        table = self.query_one("#tools", DataTable)
        table.clear()
        for i, tool in enumerate(tools):
            table.add_row(str(tool["name"]), str(tool.get("description", "")).split("\n")[0][:70], key=str(i))
        table.border_title = f"tools · {len(tools)}"

    # -- catalog -------------------------------------------------------------------------------------------

    def action_focus_search(self) -> None:
        self.query_one("#tool-search", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "tool-search":
            self._search(event.value.strip())

    @work(group="tool-search", exclusive=True)
    async def _search(self, query: str) -> None:
        if not query:
            self._show_tools(self.tools)
            return
        try:
            found = list((await self.aios.call("tool.search", query=query, limit=20))["tools"])
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        self._show_tools(found)
        self.query_one("#tools", DataTable).focus()

    # -- plans ---------------------------------------------------------------------------------------------

    def _plan_steps(self) -> list[dict[str, Any]]:
        """The plan in the editor (``{"steps": [...]}`` or a bare list of steps); UsageError if malformed."""
        from aios.errors import UsageError

        text = self.query_one("#plan-json", TextArea).text
        try:
            data = json.loads(text) if text.strip() else {"steps": []}
        except ValueError as exc:
            raise UsageError(f"the plan is not JSON: {exc}") from None
        steps = data.get("steps") if isinstance(data, dict) else data
        if not isinstance(steps, list) or not all(isinstance(s, dict) and "id" in s and "tool" in s for s in steps):
            raise UsageError('a plan is {"steps": [{"id": ..., "tool": ..., "args": {...}, "deps": [...]}]}')
        return steps

    @work(group="compose")
    async def action_add_step(self) -> None:
        """The highlighted tool as a new step, its arguments filled in a form made from its schema."""
        table = self.query_one("#tools", DataTable)
        if not self.shown_tools or not table.row_count:
            self.notify("no tool highlighted", severity="warning")
            return
        tool = self.shown_tools[table.cursor_row]
        editor = self.query_one("#plan-json", TextArea)
        try:
            steps = self._plan_steps() if editor.text.strip() != EXAMPLE_PLAN else []
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        schema_tool = next((t for t in self.tools if t["name"] == tool["name"]), tool)
        step = step_skeleton(schema_tool, {str(s["id"]) for s in steps})
        if (schema_tool.get("input_schema") or {}).get("properties"):
            args = await self.aios.push_screen_wait(ArgsForm(schema_tool))
            if args is None:
                return
            step["args"] = args
        steps.append(step)
        editor.text = json.dumps({"steps": steps}, indent=2)
        self.notify(f"added {tool['name']} to the plan")

    @work(group="compose", exclusive=True)
    async def action_write_plan(self) -> None:
        """The planner (``tool.propose``: the model, under a grammar from the candidate tools' schemas) writes
        a plan for a goal into the editor, to review and run."""
        goal = await self.aios.push_screen_wait(GoalDialog())
        if not goal:
            return
        status = self.query_one("#plan-status", Static)
        status.update(f"the planner is writing a plan for: {markup(goal)}…")
        try:
            found = await self.aios.call("tool.propose", goal=goal)
        except AiosError as exc:
            status.update(f"[red]{markup(exc.one_line())}[/]")
            return
        self.query_one("#plan-json", TextArea).text = json.dumps({"steps": found["steps"]}, indent=2)
        problems = found.get("problems") or []
        status.update(
            "the planner's plan: review it, ctrl+g runs it"
            + ("" if not problems else "\n[yellow]" + markup("; ".join(map(str, problems))[:300]) + "[/]")
        )

    def action_run_plan(self) -> None:
        if self.plan is not None and self.plan.state == "running":
            self.notify("a plan is running (ctrl+x cancels it)", severity="warning")
            return
        try:
            steps = self._plan_steps()
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        if not steps:
            self.notify("the plan has no steps", severity="warning")
            return
        self.plan = PlanRun.from_steps(steps)
        self.plan_result = None
        self._show_plan()
        self._plan_worker = self._dispatch(steps)

    @work(group="plan", exclusive=True)
    async def _dispatch(self, steps: list[dict[str, Any]]) -> None:
        plan = self.plan
        assert plan is not None
        try:
            result = await self.aios.call("tool.plan", steps=steps)
        except AiosError as exc:
            plan.state, plan.error, plan.ended = "failed", exc.one_line(), time.monotonic()
            for step in plan.steps.values():
                if step.state in ("waiting", "running"):
                    step.state = "error"
        else:
            self.plan_result = dict(result)
            plan.finish(result)
        finally:
            if plan.state == "running":  # cancelled
                plan.cancel()
            if self.is_mounted:
                self._show_plan()

    def action_cancel_plan(self) -> None:
        if self.plan is None or self.plan.state != "running" or self._plan_worker is None:
            self.notify("no plan is running")
            return
        self._plan_worker.cancel()
        self.plan.cancel()
        self._show_plan()
        self.notify("plan cancelled")

    def kernel_event(self, event: KernelEvent) -> None:
        if event.pid != 0 or self.plan is None or self.plan.state != "running":
            return
        if isinstance(event, (ToolCallStarted, ToolProgressed, ToolCallFinished)) and self.plan.on_event(event):
            self._show_plan()

    def _show_plan(self) -> None:
        plan = self.plan
        if plan is None:
            return
        dag = self.query_one("#dag", DataTable)
        dag.clear()
        for step in plan.steps.values():
            style = _STATE_STYLE.get(step.state, "")
            dag.add_row(
                "  " * step.level + ("└ " if step.level else "") + markup(step.id),
                markup(step.tool),
                markup(", ".join(step.deps) or "-"),
                f"[{style}]{step.state}[/]",
                step.timer(),
                markup((step.progress if step.state == "running" else step.result).replace("\n", " ")[:60]),
                key=step.id,
            )
        done = sum(1 for s in plan.steps.values() if s.state not in ("waiting", "running"))
        status = (
            f"plan {plan.state} · {done}/{len(plan.steps)} steps · running {plan.running} · "
            f"max parallel {plan.width} · {plan.took()}"
        )
        if plan.error:
            status += f"\n[red]{markup(plan.error)}[/]"
        self.query_one("#plan-status", Static).update(status)
        dag.border_title = f"plan · {plan.state}"
