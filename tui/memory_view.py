"""The Memory view: an agent's task trees (a Tree widget) with node details and versions, and its memory.

It reads the store read-only (as `aios tasks` and `aios mem` do), so it never competes with the kernel's
writer. Open it with ctrl+o for the selected process; escape goes back, r reloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree

__all__ = ["MemoryView"]


def _label(node: dict[str, Any], active: bool) -> str:
    text = f"n{node['id']} {escape('[' + node['status'] + ']')} {escape(node['title'])}"
    if node["output"]:
        text += f": {escape(node['output'][:60])}"
    if node["needs_recheck"]:
        text += " [yellow](re-check)[/]"
    if node["status"] == "superseded":
        text = f"[dim strike]{text}[/]"
    return ("[bold green]▶[/] " if active else "") + text


class MemoryView(Screen[None]):
    """Task trees and agent memory of one process (or of one agent's processes)."""

    DEFAULT_CSS = """
    #memory-main { height: 1fr; }
    #task-tree { width: 3fr; border: round $primary-darken-2; }
    #memory-side { width: 2fr; border: round $primary-darken-2; padding: 0 1; }
    #core-memory { margin-top: 1; }
    """
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, db_path: Path, *, pid: int | None, agent: str | None) -> None:
        super().__init__()
        self.db_path = db_path
        self.pid = pid
        self.agent = agent
        #: Every node loaded, by id (the Tree's nodes carry the id as data).
        self.nodes: dict[int, dict[str, Any]] = {}
        self.versions: dict[int, list[dict[str, Any]]] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="memory-main"):
            yield Tree("task trees", id="task-tree")
            with VerticalScroll(id="memory-side"):
                yield Static("select a step to see its details and versions", id="node-detail")
                yield Static("", id="core-memory")
        yield Footer()

    def on_mount(self) -> None:
        who = f"pid {self.pid}" if self.pid is not None else "all processes"
        self.sub_title = f"memory · {self.agent or 'any agent'} · {who}"
        self.query_one("#task-tree", Tree).border_title = "task trees"
        self.action_reload()
        self.query_one("#task-tree", Tree).focus()

    def _read(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        from memory.agent_memory import AgentMemory
        from memory.store import Store
        from memory.tasktree import TaskTreeStore

        store = Store.open_read_only(self.db_path)
        if store is None or not store.db["task_trees"].exists():
            return [], None
        try:
            tasks = TaskTreeStore(store.db)
            trees = tasks.trees(pid=self.pid) if self.pid is not None else tasks.trees(owner=self.agent)
            out = [{**t, "nodes": tasks.nodes(t["id"])} for t in trees]
            self.versions = {n["id"]: tasks.history(n["id"]) for t in out for n in t["nodes"]}
            memory = (
                AgentMemory(store.db, read_only=True).list_items(f"agent:{self.agent}", kind="core")
                if self.agent
                else None
            )
            return out, memory
        finally:
            store.close()

    def action_reload(self) -> None:
        trees, memory = self._read()
        widget = self.query_one("#task-tree", Tree)
        widget.clear()
        widget.root.expand()
        self.nodes = {}
        for tree in trees:
            kids: dict[int | None, list[dict[str, Any]]] = {}
            for node in sorted(tree["nodes"], key=lambda n: (n["position"], n["id"])):
                kids.setdefault(node["parent_id"], []).append(node)
                self.nodes[node["id"]] = node
            branch = widget.root.add(f"[bold]t{tree['id']}[/] {escape(tree['title'])}", expand=True)

            for root in kids.get(None, []):
                self._add(branch, root, kids, tree["active_id"])
        if not trees:
            widget.root.add_leaf("no task trees yet")
        self.query_one("#core-memory", Static).update(self._core_text(memory))

    def _add(
        self, parent: Any, node: dict[str, Any], kids: dict[int | None, list[dict[str, Any]]], active: int
    ) -> None:
        item = parent.add(_label(node, node["id"] == active), data=node["id"], expand=True)
        for child in kids.get(node["id"], []):
            self._add(item, child, kids, active)
        if not kids.get(node["id"]):
            item.allow_expand = False

    @staticmethod
    def _core_text(memory: dict[str, Any] | None) -> str:
        if memory is None:
            return ""
        lines = [f"[bold]core memory · {escape(memory['namespace'])}[/]"]
        lines += [
            f"[b]{escape(b['label'])}[/] ({escape(b['source_kind'])}): {escape(b['value'])}" for b in memory["core"]
        ]
        lines += [f"[i]staged[/] {escape(p['label'])}: {escape(str(p['value']))}" for p in memory["pending"]]
        if len(lines) == 1:
            lines.append("no core blocks")
        return "\n".join(lines)

    def detail(self, node_id: int) -> str:
        node = self.nodes[node_id]
        lines = [
            f"[bold]n{node['id']} {escape(node['title'])}[/]  {escape('[' + node['status'] + ']')}  v{node['version']}",
            f"output: {escape(node['output']) or '-'}",
            f"input: {escape(node['input']) or '-'}",
        ]
        if node["depends_on"]:
            lines.append("depends on: " + ", ".join(f"n{d}" for d in node["depends_on"]))
        if node["superseded_by"]:
            lines.append(f"superseded by n{node['superseded_by']}")
        if node["needs_recheck"]:
            lines.append("[yellow]needs re-check: something it depends on changed[/]")
        lines.append("[bold]versions[/]")
        for v in self.versions.get(node_id, []):
            lines.append(
                f"v{v['version']} {escape('[' + v['status'] + ']')} {escape(v['output'] or '-')} · "
                f"{escape(v['actor'])} · {v['change']}"
            )
        return "\n".join(lines)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[Any]) -> None:
        if isinstance(event.node.data, int):
            self.query_one("#node-detail", Static).update(self.detail(event.node.data))
