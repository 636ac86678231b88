"""The task-memory tree: each step of an agent's task is a node with input, output, status and relations.

Nodes have stable integer ids, one parent (the tree shape) and dependency edges to any other node of the
same tree (a DAG: shared sub-steps, converging paths; cycles are refused). Every change to a node writes a
new version with the actor that made it, so any node can be rolled back. Replacing or rolling back a node
flags everything that depends on it (transitively) for re-check. Every operation is one SQLite
transaction: it happens completely or not at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from memory._sqltx import immediate, locked
from memory._tasktypes import (
    NODE_FIELDS,
    STATUSES,
    TRANSITIONS,
    CycleError,
    NodeNotFound,
    Status,
    TaskError,
    TreeNotFound,
    VersionError,
    check_status,
    check_title,
    find_cycle,
)

__all__ = [
    "STATUSES",
    "CycleError",
    "NodeNotFound",
    "Status",
    "TaskError",
    "TaskTreeStore",
    "TreeNotFound",
    "VersionError",
]


class TaskTreeStore:
    """All task trees in one SQLite database (the kernel's ``aios.db``)."""

    def __init__(self, db: sqlite_utils.Database, *, lock: threading.RLock | None = None) -> None:
        self.db = db
        self._lock = lock or threading.RLock()

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with immediate(self.db, self._lock):
            yield

    def _one(self, sql: str, params: Iterable[Any]) -> dict[str, Any] | None:
        rows = list(self.db.query(sql, list(params)))
        return dict(rows[0]) if rows else None

    # -- reading -------------------------------------------------------------------------------------

    @locked
    def tree(self, tree_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM task_trees WHERE id = ?", [tree_id])
        if row is None:
            raise TreeNotFound(f"no task tree t{tree_id}", "see `aios tasks tree`")
        return row

    @locked
    def trees(self, *, owner: str | None = None, pid: int | None = None) -> list[dict[str, Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if pid is not None:
            clauses.append("pid = ?")
            params.append(pid)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [dict(r) for r in self.db.query(f"SELECT * FROM task_trees {where} ORDER BY id", params)]

    @locked
    def node(self, node_id: int, *, tree_id: int | None = None) -> dict[str, Any]:
        row = self._one("SELECT * FROM task_nodes WHERE id = ?", [node_id])
        if row is None or (tree_id is not None and row["tree_id"] != tree_id):
            where = f" in task tree t{tree_id}" if tree_id is not None else ""
            raise NodeNotFound(f"no task node n{node_id}{where}", "see `aios tasks tree`")
        return self._decorate(row)

    @locked
    def nodes(self, tree_id: int, *, include_superseded: bool = True) -> list[dict[str, Any]]:
        self.tree(tree_id)
        sql = "SELECT * FROM task_nodes WHERE tree_id = ?" + (
            "" if include_superseded else " AND status != 'superseded'"
        )
        rows = [dict(r) for r in self.db.query(sql + " ORDER BY id", [tree_id])]
        edges = self._edges_of(tree_id)
        for row in rows:
            self._decorate(row, edges)
        return rows

    @locked
    def history(self, node_id: int) -> list[dict[str, Any]]:
        self.node(node_id)
        sql = "SELECT * FROM task_node_versions WHERE node_id = ? ORDER BY version"
        return [dict(r) for r in self.db.query(sql, [node_id])]

    @locked
    def dependents(self, node_id: int) -> list[int]:
        return [
            r[0]
            for r in self.db.execute("SELECT node_id FROM task_edges WHERE depends_on = ? ORDER BY node_id", [node_id])
        ]

    @locked
    def children(self, node_id: int, *, include_superseded: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM task_nodes WHERE parent_id = ?" + (
            "" if include_superseded else " AND status != 'superseded'"
        )
        return [self._decorate(dict(r)) for r in self.db.query(sql + " ORDER BY position, id", [node_id])]

    @locked
    def active_path(self, tree_id: int, node_id: int | None = None) -> list[dict[str, Any]]:
        """The nodes from the root down to ``node_id`` (default: the tree's active node)."""
        tree = self.tree(tree_id)
        current: int | None = tree["active_id"] if node_id is None else node_id
        path: list[dict[str, Any]] = []
        seen: set[int] = set()
        while current is not None and current not in seen:
            seen.add(current)
            node = self.node(current, tree_id=tree_id)
            path.append(node)
            current = node["parent_id"]
        return list(reversed(path))

    @locked
    def dependency_closure(self, node_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Every node the given ones depend on, transitively, nearest first (BFS), without the given ones."""
        start = list(node_ids)
        seen = set(start)
        order: list[int] = []
        frontier = start
        while frontier:
            nxt: list[int] = []
            for nid in frontier:
                for (dep,) in self.db.execute(
                    "SELECT depends_on FROM task_edges WHERE node_id = ? ORDER BY depends_on", [nid]
                ):
                    if dep not in seen:
                        seen.add(dep)
                        order.append(dep)
                        nxt.append(dep)
            frontier = nxt
        return [self.node(n) for n in order]

    def _edges_of(self, tree_id: int) -> dict[int, list[int]]:
        edges: dict[int, list[int]] = {}
        sql = (
            "SELECT e.node_id, e.depends_on FROM task_edges e JOIN task_nodes n ON n.id = e.node_id "
            "WHERE n.tree_id = ? ORDER BY e.node_id, e.depends_on"
        )
        for src, dep in self.db.execute(sql, [tree_id]):
            edges.setdefault(src, []).append(dep)
        return edges

    def _decorate(self, row: dict[str, Any], edges: dict[int, list[int]] | None = None) -> dict[str, Any]:
        if edges is None:
            deps = [
                r[0]
                for r in self.db.execute(
                    "SELECT depends_on FROM task_edges WHERE node_id = ? ORDER BY depends_on", [row["id"]]
                )
            ]
        else:
            deps = edges.get(row["id"], [])
        row["depends_on"] = deps
        row["needs_recheck"] = bool(row["needs_recheck"])
        return row

    # -- writing -------------------------------------------------------------------------------------

    def create_tree(
        self, *, owner: str, title: str, input: str = "", pid: int | None = None, actor: str = ""
    ) -> dict[str, Any]:
        """A new tree with its root node (the task itself), active at the root."""
        title = check_title(title)
        now = time.time()
        with self._tx():
            cur = self.db.execute(
                "INSERT INTO task_trees (owner, pid, title, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                [owner, pid, title, now, now],
            )
            tree_id = int(cur.lastrowid or 0)
            root = self._insert_node(tree_id, None, title, "running", input, "", actor or owner, "create")
            self.db.execute("UPDATE task_trees SET root_id = ?, active_id = ? WHERE id = ?", [root, root, tree_id])
        return self.tree(tree_id)

    def add_node(
        self,
        tree_id: int,
        *,
        title: str,
        parent_id: int | None = None,
        input: str = "",
        output: str = "",
        status: str = "pending",
        depends_on: Iterable[int] = (),
        actor: str,
        activate: bool = True,
    ) -> dict[str, Any]:
        """Add a child of ``parent_id`` (default: the root), with dependencies, optionally made active."""
        tree = self.tree(tree_id)
        title = check_title(title)
        check_status(status, allow_superseded=False)
        parent = self._live(parent_id if parent_id is not None else tree["root_id"], tree_id, "add a child to")
        deps = list(dict.fromkeys(depends_on))
        for dep in deps:
            self._live(dep, tree_id, "depend on")
        with self._tx():
            nid = self._insert_node(tree_id, parent["id"], title, status, input, output, actor, "create")
            for dep in deps:  # a brand-new node has no dependents, so its edges cannot close a cycle
                self._insert_edge(nid, dep)
            if activate:
                self._set_active(tree_id, nid)
            self._touch(tree_id)
        return self.node(nid)

    def add_dependency(self, node_id: int, depends_on: int, *, actor: str) -> dict[str, Any]:
        node = self._live(node_id, None, "add a dependency to")
        self._live(depends_on, node["tree_id"], "depend on")
        if depends_on == node_id or node_id in self._reachable(depends_on):
            raise CycleError(f"n{node_id} -> n{depends_on} would make a dependency cycle", "dependencies form a DAG")
        with self._tx():
            self._insert_edge(node_id, depends_on)
            self._touch(node["tree_id"])
        return self.node(node_id)

    def update(
        self,
        node_id: int,
        *,
        actor: str,
        title: str | None = None,
        input: str | None = None,
        output: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Write a new version of the node; dependents are flagged for re-check when its value changes."""
        node = self._live(node_id, None, "update")
        changes = {"title": title if title is None else check_title(title), "input": input, "output": output}
        if status is not None and status != node["status"]:
            check_status(status, allow_superseded=False)
            if status not in TRANSITIONS[node["status"]]:
                raise TaskError(f"n{node_id} cannot go from {node['status']} to {status}")
        changes["status"] = status
        new = {f: node[f] if changes[f] is None else changes[f] for f in NODE_FIELDS}
        if all(new[f] == node[f] for f in NODE_FIELDS):
            with self._tx():
                self.db.execute("UPDATE task_nodes SET needs_recheck = 0 WHERE id = ?", [node_id])
            return self.node(node_id)
        with self._tx():
            self._write_version(node_id, new, actor, "update", recheck=False)
            if new["output"] != node["output"] or new["input"] != node["input"] or new["status"] != node["status"]:
                self._flag_dependents([node_id])
            self._touch(node["tree_id"])
        return self.node(node_id)

    def replace(
        self,
        node_ids: Iterable[int],
        *,
        title: str,
        output: str = "",
        input: str = "",
        status: str = "done",
        actor: str,
    ) -> dict[str, Any]:
        """Supersede one node (a correction) or several (a merge) with one new node in the first one's place.

        The new node takes over their children, their dependencies and their dependents (flagged for
        re-check); the old ones stay in the tree, marked superseded, with their history.
        """
        old_ids = list(dict.fromkeys(node_ids))
        if not old_ids:
            raise TaskError("replace needs at least one node")
        olds = [self._live(n, None, "replace") for n in old_ids]
        tree_id = olds[0]["tree_id"]
        for other in olds[1:]:
            if other["tree_id"] != tree_id:
                raise TaskError(f"n{other['id']} is in task tree t{other['tree_id']}, not t{tree_id}")
        if any(o["parent_id"] is None for o in olds):
            raise TaskError("the root of a task tree cannot be replaced; update it instead")
        title = check_title(title)
        check_status(status, allow_superseded=False)
        old_set = set(old_ids)
        deps = sorted({d for o in olds for d in o["depends_on"]} - old_set)
        dependents = sorted({d for o in old_ids for d in self.dependents(o)} - old_set)
        with self._tx():
            first = olds[0]
            nid = self._insert_node(
                tree_id, first["parent_id"], title, status, input, output, actor, "create", position=first["position"]
            )
            for dep in deps:
                self._insert_edge(nid, dep)
            for dependent in dependents:
                if self.node(dependent)["status"] != "superseded":
                    self._insert_edge(dependent, nid)
            for old in olds:
                self.db.execute(
                    "UPDATE task_nodes SET parent_id = ? WHERE parent_id = ? AND id != ?", [nid, old["id"], nid]
                )
                self._supersede(old, nid, actor, f"replaced by n{nid}")
            cycle = self._find_cycle(tree_id)
            if cycle:
                raise CycleError(
                    f"replacing {', '.join(f'n{o}' for o in old_ids)} would make a dependency cycle through n{cycle}",
                    "nothing was changed",
                )
            tree = self.tree(tree_id)
            if tree["active_id"] in old_set:
                self._set_active(tree_id, nid)
            self._flag_dependents([nid])
            self._touch(tree_id)
        return self.node(nid)

    def supersede(self, node_id: int, *, actor: str) -> dict[str, Any]:
        """Drop a node without a replacement (its dependents are flagged); roll it back to restore it."""
        node = self._live(node_id, None, "supersede")
        if node["parent_id"] is None:
            raise TaskError("the root of a task tree cannot be superseded")
        with self._tx():
            self._supersede(node, None, actor, "superseded")
            tree = self.tree(node["tree_id"])
            if tree["active_id"] == node_id:
                self._set_active(node["tree_id"], node["parent_id"])
            self._flag_dependents([node_id])
            self._touch(node["tree_id"])
        return self.node(node_id)

    def rollback(self, node_id: int, version: int, *, actor: str) -> dict[str, Any]:
        """Restore the node's fields as they were at ``version`` (as a new version); flag its dependents."""
        node = self.node(node_id)
        current = node["version"]
        if version < 1 or version > current:
            raise VersionError(f"n{node_id} has no version {version} (it has versions 1..{current})")
        if version == current:
            raise VersionError(f"n{node_id} is already at version {version}")
        old = self._one("SELECT * FROM task_node_versions WHERE node_id = ? AND version = ?", [node_id, version])
        assert old is not None
        new = {f: old[f] for f in NODE_FIELDS}
        with self._tx():
            self._write_version(node_id, new, actor, f"rollback to v{version}", recheck=False)
            if new["status"] != "superseded":
                self.db.execute("UPDATE task_nodes SET superseded_by = NULL WHERE id = ?", [node_id])
            self._flag_dependents([node_id])
            self._touch(node["tree_id"])
        return self.node(node_id)

    def set_active(self, tree_id: int, node_id: int) -> dict[str, Any]:
        self._live(node_id, tree_id, "make active")
        with self._tx():
            self._set_active(tree_id, node_id)
        return self.tree(tree_id)

    # -- internals -----------------------------------------------------------------------------------

    def _live(self, node_id: int, tree_id: int | None, verb: str) -> dict[str, Any]:
        node = self.node(node_id, tree_id=tree_id)
        if node["status"] == "superseded":
            by = f" by n{node['superseded_by']}" if node["superseded_by"] else ""
            raise TaskError(f"cannot {verb} n{node_id}: it is superseded{by}", "roll it back to restore it")
        return node

    def _insert_node(
        self,
        tree_id: int,
        parent_id: int | None,
        title: str,
        status: str,
        input: str,
        output: str,
        actor: str,
        change: str,
        *,
        position: int | None = None,
    ) -> int:
        now = time.time()
        if position is None:
            row = self.db.execute("SELECT max(position) FROM task_nodes WHERE parent_id IS ?", [parent_id]).fetchone()
            position = int(row[0] or 0) + 1 if row[0] is not None else 0
        cur = self.db.execute(
            "INSERT INTO task_nodes (tree_id, parent_id, position, title, status, input, output, version, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            [tree_id, parent_id, position, title, status, input, output, now, now],
        )
        nid = int(cur.lastrowid or 0)
        self.db.execute(
            "INSERT INTO task_node_versions VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
            [nid, title, status, input, output, actor, change, now],
        )
        return nid

    def _write_version(self, node_id: int, new: dict[str, Any], actor: str, change: str, *, recheck: bool) -> None:
        now = time.time()
        (version,) = self.db.execute("SELECT version FROM task_nodes WHERE id = ?", [node_id]).fetchone()
        version += 1
        self.db.execute(
            "UPDATE task_nodes SET title = ?, status = ?, input = ?, output = ?, version = ?, needs_recheck = ?, "
            "updated_at = ? WHERE id = ?",
            [new["title"], new["status"], new["input"], new["output"], version, int(recheck), now, node_id],
        )
        self.db.execute(
            "INSERT INTO task_node_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [node_id, version, new["title"], new["status"], new["input"], new["output"], actor, change, now],
        )

    def _supersede(self, node: dict[str, Any], by: int | None, actor: str, change: str) -> None:
        new = {f: node[f] for f in NODE_FIELDS} | {"status": "superseded"}
        self._write_version(node["id"], new, actor, change, recheck=False)
        self.db.execute("UPDATE task_nodes SET superseded_by = ? WHERE id = ?", [by, node["id"]])

    def _insert_edge(self, node_id: int, depends_on: int) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO task_edges (node_id, depends_on, created_at) VALUES (?, ?, ?)",
            [node_id, depends_on, time.time()],
        )

    def _reachable(self, start: int) -> set[int]:
        """Every node ``start`` depends on, transitively."""
        seen: set[int] = set()
        frontier = [start]
        while frontier:
            nid = frontier.pop()
            for (dep,) in self.db.execute("SELECT depends_on FROM task_edges WHERE node_id = ?", [nid]):
                if dep not in seen:
                    seen.add(dep)
                    frontier.append(dep)
        return seen

    def _find_cycle(self, tree_id: int) -> int | None:
        return find_cycle(self._edges_of(tree_id))

    def _flag_dependents(self, node_ids: list[int]) -> None:
        seen: set[int] = set(node_ids)
        frontier = list(node_ids)
        while frontier:
            nid = frontier.pop()
            for dependent in self.dependents(nid):
                if dependent not in seen:
                    seen.add(dependent)
                    frontier.append(dependent)
                    self.db.execute(
                        "UPDATE task_nodes SET needs_recheck = 1 WHERE id = ? AND status != 'superseded'", [dependent]
                    )

    def _set_active(self, tree_id: int, node_id: int) -> None:
        self.db.execute("UPDATE task_trees SET active_id = ? WHERE id = ?", [node_id, tree_id])

    def _touch(self, tree_id: int) -> None:
        self.db.execute("UPDATE task_trees SET updated_at = ? WHERE id = ?", [time.time(), tree_id])
