"""Files mode: the semantic file system's mounts and indexing, a search box with live results (hybrid, keyword
or semantic), the matching chunk highlighted, and a file's versions with a diff view and a confirmed rollback.
Every read and write is an ``fs.*`` syscall made as the user (checked against ``[access.user]``, audited)."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Button, DataTable, Input, Label, Select, Static

from aios.errors import AiosError
from tui.common import ModeScreen, markup

__all__ = ["ConfirmDialog", "FilesScreen", "highlight"]

#: How long typing pauses before the search runs.
SEARCH_DEBOUNCE_S = 0.15


def highlight(text: str, terms: list[str]) -> Text:
    """``text`` with each of ``terms`` (case-insensitive) shown bold and reversed."""
    out = Text(text)
    for term in terms:
        if term:
            out.highlight_regex(re.compile(re.escape(term), re.IGNORECASE), "bold reverse")
    return out


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question (y / n, or the buttons; escape is no)."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title", id="confirm-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes [y]", id="confirm-yes", variant="warning")
                yield Button("No [n]", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class FilesScreen(ModeScreen):
    MODE = "files"
    HELP = "Mounts, live search, previews, versions, diffs and rollback"
    REFRESH_S = 3.0
    BINDINGS = [
        Binding("ctrl+f", "focus_search", "Search", priority=True),
        Binding("ctrl+e", "cycle_mode", "Search mode", priority=True),
        Binding("ctrl+b", "rollback", "Roll back", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.results: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.path: str | None = None
        self._debounce: Timer | None = None

    def body(self) -> ComposeResult:
        modes = [("hybrid", "hybrid"), ("keyword", "keyword"), ("semantic", "semantic")]
        mounts = Static("", id="mounts")
        mounts.border_title = "mounts"
        results: DataTable[str] = DataTable(id="results", cursor_type="row", zebra_stripes=True)
        results.add_columns("FILE", "SCORE", "LINES", "BY")
        results.border_title = "results"
        versions: DataTable[str] = DataTable(id="versions", cursor_type="row")
        versions.add_columns("V", "SIZE", "SOURCE", "WHEN")
        versions.border_title = "versions"
        preview = VerticalScroll(Static("", id="preview"), id="preview-box")
        preview.border_title = "preview"
        diff = VerticalScroll(Static("", id="diff"), id="diff-box")
        diff.border_title = "diff"
        yield Horizontal(
            Vertical(
                mounts,
                Horizontal(
                    Input(placeholder="search files (live)", id="file-search"),
                    Select(modes, value="hybrid", allow_blank=False, id="search-mode"),
                    id="search-row",
                ),
                results,
                Input(placeholder="ask: e.g. roll back my lisbon notes (Enter)", id="fs-ask"),
                id="files-left",
            ),
            Vertical(preview, versions, diff, id="files-right"),
            id="files-main",
        )

    def setup(self) -> None:
        self.query_one("#file-search", Input).focus()

    async def refresh_data(self) -> None:
        try:
            found = await self.aios.call("fs.mounts")
        except AiosError as exc:
            self.query_one("#mounts", Static).update(f"[red]{markup(exc.one_line())}[/]")
            return
        status = found.get("status", {})
        lines = [
            f"{markup(m['name'])}  {markup(m['path'])}" + ("" if m.get("present", True) else " [red](missing)[/]")
            for m in found.get("mounts", [])
        ] or ["no mounts: `aios fs mount PATH`"]
        pending = status.get("vectors_pending") or 0
        lines.append(
            f"[dim]{status.get('files', 0)} files · {status.get('chunks', 0)} chunks"
            + (f" · indexing: {pending} vectors to embed" if pending else " · index up to date")
            + "[/]"
        )
        self.query_one("#mounts", Static).update("\n".join(lines))

    # -- search --------------------------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "file-search":
            return
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(SEARCH_DEBOUNCE_S, self.search)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "file-search":
            self.search()
            self.query_one("#results", DataTable).focus()
        elif event.input.id == "fs-ask" and event.value.strip():
            self.ask(event.value.strip())

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "search-mode":
            self.search()

    def action_focus_search(self) -> None:
        self.query_one("#file-search", Input).focus()

    def action_cycle_mode(self) -> None:
        select = self.query_one("#search-mode", Select)
        modes = ["hybrid", "keyword", "semantic"]
        select.value = modes[(modes.index(str(select.value)) + 1) % len(modes)]

    @work(group="search", exclusive=True)
    async def search(self) -> None:
        query = self.query_one("#file-search", Input).value.strip()
        mode = str(self.query_one("#search-mode", Select).value)
        table = self.query_one("#results", DataTable)
        if not query:
            table.clear()
            self.results = []
            return
        try:
            found = await self.aios.call("fs.search", query=query, k=20, mode=mode)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        self.results = list(found["results"])
        table.clear()
        for i, hit in enumerate(self.results):
            table.add_row(
                f"{hit['mount']}/{hit['relpath']}",
                f"{float(hit['score']):.3f}",
                f"{hit['start_line']}-{hit['end_line']}",
                "+".join(hit.get("matched_by") or []),
                key=str(i),
            )
        table.border_title = f"results · {len(self.results)} · {mode}"
        if self.results:
            self._show_hit(0)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is None:
            return
        if event.data_table.id == "results":
            self._show_hit(int(key))
        elif event.data_table.id == "versions":
            self._diff(int(key))

    def _show_hit(self, index: int) -> None:
        hit = self.results[index]
        head = Text(f"{hit['path']}:{hit['start_line']}", style="bold")
        if hit.get("heading"):
            head.append(f"  § {hit['heading']}", style="italic")
        preview = Text("\n").join([head, highlight(str(hit["chunk"]), list(hit.get("terms") or []))])
        self.query_one("#preview", Static).update(preview)
        if hit["path"] != self.path:
            self.path = str(hit["path"])
            self._load_history(self.path)

    # -- versions --------------------------------------------------------------------------------------------

    @work(group="history", exclusive=True)
    async def _load_history(self, path: str) -> None:
        table = self.query_one("#versions", DataTable)
        try:
            found = await self.aios.call("fs.history", path=path)
        except AiosError as exc:
            table.clear()
            self.query_one("#diff", Static).update(markup(exc.one_line()))
            return
        import datetime as dt

        self.versions = list(found["versions"])
        table.clear()
        for v in self.versions:
            when = dt.datetime.fromtimestamp(float(v["created_at"])).strftime("%m-%d %H:%M:%S")
            table.add_row(str(v["version"]), str(v["size"] or 0), str(v["source"]), when, key=str(v["version"]))
        table.border_title = f"versions · {path.rsplit('/', 1)[-1]}"
        if self.versions:
            table.move_cursor(row=len(self.versions) - 1)

    @work(group="diff", exclusive=True)
    async def _diff(self, version: int) -> None:
        if self.path is None:
            return
        shown = self.query_one("#diff", Static)
        if version == len(self.versions):
            shown.update("the latest version" + (" (select an earlier one to diff)" if version > 1 else ""))
            return
        try:
            found = await self.aios.call("fs.diff", path=self.path, a=version, b=0)
        except AiosError as exc:
            shown.update(markup(exc.one_line()))
            return
        text = Text()
        for line in str(found["diff"]).splitlines():
            style = (
                "green"
                if line.startswith("+")
                else "red"
                if line.startswith("-")
                else "cyan"
                if line.startswith("@")
                else ""
            )
            text.append(line + "\n", style=style)
        shown.update(text if text else "no difference")

    # -- the natural-language file command (fs ask) -------------------------------------------------------

    @work(group="ask", exclusive=True)
    async def ask(self, request: str) -> None:
        """``fs.ask`` plans it (the model, grammar-constrained); the plan is shown, then run."""
        preview = self.query_one("#preview", Static)
        preview.update(f"planning: {markup(request)}…")
        try:
            found = await self.aios.call("fs.ask", request=request)
        except AiosError as exc:
            preview.update(f"[red]{markup(exc.one_line())}[/]")
            return
        await self.run_fs_plan(dict(found["plan"]), set(found.get("destructive_ops") or ()))

    async def run_fs_plan(self, plan: dict[str, Any], destructive: set[str]) -> list[dict[str, Any]]:
        """Show ``plan``, ask before its destructive steps, run it (``fs.run_plan``), show what each step did."""
        preview = self.query_one("#preview", Static)
        steps = list(plan.get("steps") or [])
        lines = ["[bold]plan[/]"]
        for i, step in enumerate(steps, 1):
            what = step.get("query") or step.get("path") or ""
            mark = " [yellow](changes files)[/]" if step.get("op") in destructive else ""
            lines.append(f"{i}. {markup(step.get('op'))} {markup(what)}{mark}")
        preview.update("\n".join(lines))
        risky = [s for s in steps if s.get("op") in destructive]
        confirmed = False
        if risky:
            names = ", ".join(f"{s.get('op')} {s.get('path')}" for s in risky)
            confirmed = bool(
                await self.aios.push_screen_wait(ConfirmDialog(f"Run {len(risky)} step(s) that change files: {names}?"))
            )
        try:
            found = await self.aios.call("fs.run_plan", plan=plan, confirmed=confirmed)
        except AiosError as exc:
            lines.append(f"[red]{markup(exc.one_line())}[/]")
            preview.update("\n".join(lines))
            return []
        results = list(found["results"])
        lines.append("[bold]results[/]")
        for r in results:
            detail = r.get("detail")
            shown = detail if isinstance(detail, str) else str(detail)
            lines.append(
                f"{markup(r.get('op'))} {markup(r.get('path'))}: {markup(r.get('status'))} {markup(shown[:200])}"
            )
        preview.update("\n".join(lines))
        if self.path is not None:
            self._load_history(self.path)
        return results

    @work(group="input")
    async def action_rollback(self) -> None:
        path = self.path
        if path is None:
            self.notify("search for a file first", severity="warning")
            return
        if not await self.aios.push_screen_wait(ConfirmDialog(f"Roll {path} back one version?")):
            return
        try:
            await self.aios.call("fs.rollback", path=path, steps=1)
        except AiosError as exc:
            self.notify(exc.one_line(), severity="error")
            return
        self.notify(f"rolled back {path}")
        self._load_history(path)
