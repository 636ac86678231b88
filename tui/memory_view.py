"""Memory mode: every task tree the user may read (a Tree widget: steps, their state, the active step marked),
a step's details and versions, and the memory namespaces with search. All through ``task.*`` and ``mem.*``
syscalls made as the user (f4, or ctrl+o from the console with the selected process's trees first)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Static, Tree

from aios.errors import AiosError
from tui.common import ModeScreen, markup

__all__ = ["MemoryScreen", "node_label"]


def node_label(node: dict[str, Any], active: bool) -> str:
    text = f"n{node['id']} {markup('[' + node['status'] + ']')} {markup(node['title'])}"
    if node.get("output"):
        text += f": {markup(str(node['output'])[:60])}"
    if node.get("needs_recheck"):
        text += " [yellow](re-check)[/]"
    if node["status"] == "superseded":
        text = f"[dim strike]{text}[/]"
    return ("[bold green]▶[/] " if active else "") + text


class MemoryScreen(ModeScreen):
    MODE = "memory"
    HELP = "Task trees of every agent, a step's versions, memory namespaces and search"
    REFRESH_S = 2.0
    BINDINGS = [
        Binding("ctrl+l", "reload", "Reload", priority=True),
        Binding("ctrl+f", "focus_search", "Search memory", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.trees: list[dict[str, Any]] = []
        self.nodes: dict[int, dict[str, Any]] = {}
        self.namespaces: list[dict[str, Any]] = []
        self.namespace: str | None = None
        self._shape: object = None

    def body(self) -> ComposeResult:
        tree: Tree[int] = Tree("task trees", id="task-tree")
        tree.border_title = "task trees"
        tree.show_root = False
        node = VerticalScroll(Static("select a step to see its details and versions", id="node-detail"), id="node-box")
        node.border_title = "step"
        namespaces: DataTable[str] = DataTable(id="namespaces", cursor_type="row")
        namespaces.add_columns("NAMESPACE", "CORE", "RECALL", "ARCHIVAL")
        namespaces.border_title = "namespaces"
        results = VerticalScroll(Static("", id="mem-results"), id="mem-results-box")
        results.border_title = "memory"
        yield Horizontal(
            tree,
            Vertical(
                node,
                namespaces,
                Input(placeholder="search the selected namespace (Enter)", id="mem-search"),
                results,
                id="memory-side",
            ),
            id="memory-main",
        )

    def setup(self) -> None:
        self.query_one("#task-tree", Tree).focus()

    async def refresh_data(self) -> None:
        await self.reload()

    def action_reload(self) -> None:
        self._shape = None
        self.refresh_now()

    def action_focus_search(self) -> None:
        self.query_one("#mem-search", Input).focus()

    async def reload(self) -> None:
        app = self.aios
        try:
            trees = list(await app.call("task.trees", nodes=True))
            namespaces = list(await app.call("mem.namespaces"))
        except AiosError as exc:
            self.query_one("#node-detail", Static).update(f"[red]{markup(exc.one_line())}[/]")
            return
        shape = (
            [(t["id"], t.get("active_id"), [(n["id"], n["version"], n["status"]) for n in t["nodes"]]) for t in trees],
            namespaces,
        )
        if shape == self._shape:
            return
        self._shape = shape
        # The selected process's trees first (ctrl+o from the console).
        selected = app.selected_pid
        self.trees = sorted(trees, key=lambda t: (t.get("pid") != selected, -int(t["id"])))
        self._render_trees()
        self.namespaces = namespaces
        table = self.query_one("#namespaces", DataTable)
        table.clear()
        for ns in namespaces:
            name = str(ns["namespace"])
            table.add_row(name, str(ns.get("core", 0)), str(ns.get("recall", 0)), str(ns.get("archival", 0)), key=name)

    def _render_trees(self) -> None:
        widget = self.query_one("#task-tree", Tree)
        widget.clear()
        self.nodes = {}
        for tree in self.trees:
            kids: dict[int | None, list[dict[str, Any]]] = {}
            for node in sorted(tree["nodes"], key=lambda n: (n["position"], n["id"])):
                kids.setdefault(node["parent_id"], []).append(node)
                self.nodes[node["id"]] = node
            owner = f"{tree.get('owner', '')}" + (f" pid {tree['pid']}" if tree.get("pid") else "")
            branch = widget.root.add(
                f"[bold]t{tree['id']}[/] {markup(tree['title'])} [dim]{markup(owner)}[/]", expand=True
            )
            for root in kids.get(None, []):
                self._add(branch, root, kids, tree.get("active_id"))
        if not self.trees:
            widget.root.add_leaf("no task trees yet")

    def _add(
        self, parent: Any, node: dict[str, Any], kids: dict[int | None, list[dict[str, Any]]], active: Any
    ) -> None:
        item = parent.add(node_label(node, node["id"] == active), data=node["id"], expand=True)
        for child in kids.get(node["id"], []):
            self._add(item, child, kids, active)
        if not kids.get(node["id"]):
            item.allow_expand = False

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Any]) -> None:
        if isinstance(event.node.data, int):
            self._show_node(event.node.data)

    @work(group="node", exclusive=True)
    async def _show_node(self, node_id: int) -> None:
        try:
            versions = list((await self.aios.call("task.show", node=node_id))["versions"])
        except AiosError as exc:
            versions = []
            self.notify(exc.one_line(), severity="warning")
        self.query_one("#node-detail", Static).update(self.detail(node_id, versions))

    def detail(self, node_id: int, versions: list[dict[str, Any]]) -> str:
        node = self.nodes[node_id]
        lines = [
            f"[bold]n{node['id']} {markup(node['title'])}[/]  {markup('[' + node['status'] + ']')}  v{node['version']}",
            f"output: {markup(node.get('output') or '-')}",
            f"input: {markup(node.get('input') or '-')}",
        ]
        if node.get("depends_on"):
            lines.append("depends on: " + ", ".join(f"n{d}" for d in node["depends_on"]))
        if node.get("superseded_by"):
            lines.append(f"superseded by n{node['superseded_by']}")
        if node.get("needs_recheck"):
            lines.append("[yellow]needs re-check: something it depends on changed[/]")
        lines.append("[bold]versions[/]")
        for v in versions:
            lines.append(
                f"v{v['version']} {markup('[' + v['status'] + ']')} {markup(v.get('output') or '-')} · "
                f"{markup(v.get('actor', ''))} · {markup(v.get('change', ''))}"
            )
        return "\n".join(lines)

    # -- namespaces ------------------------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "namespaces" and event.row_key.value is not None:
            self.namespace = str(event.row_key.value)
            self._show_core(self.namespace)

    @work(group="mem", exclusive=True)
    async def _show_core(self, namespace: str) -> None:
        try:
            found = await self.aios.call("mem.list", namespace=namespace, kind="core")
        except AiosError as exc:
            self.query_one("#mem-results", Static).update(markup(exc.one_line()))
            return
        items = found.get("core", found.get("items", [])) if isinstance(found, dict) else found
        lines = [f"[bold]core · {markup(namespace)}[/]"]
        for item in items or []:
            lines.append(f"[b]{markup(item.get('label', ''))}[/]: {markup(item.get('value', item.get('text', '')))}")
        if len(lines) == 1:
            lines.append("no core blocks")
        self.query_one("#mem-results", Static).update("\n".join(lines))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "mem-search" and event.value.strip():
            self._search(event.value.strip())

    @work(group="mem", exclusive=True)
    async def _search(self, query: str) -> None:
        shown = self.query_one("#mem-results", Static)
        shown.update(f"searching {markup(self.namespace or 'my namespace')} for {markup(query)}…")
        payload: dict[str, Any] = {"query": query, "limit": 20}
        if self.namespace:
            payload["namespace"] = self.namespace
        try:
            hits = list(await self.aios.call("mem.search", **payload))
        except AiosError as exc:
            shown.update(markup(exc.one_line()))
            return
        text = Text()
        for hit in hits:
            text.append(f"{hit.get('kind', '')} ", style="bold")
            text.append(str(hit.get("text", hit.get("value", "")))[:300] + "\n")
        shown.update(text if hits else "nothing found")
