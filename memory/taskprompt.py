"""Prompt synthesis from a task tree: the active node's root-to-node path plus its dependency chains.

What goes in: the task (root), the facts the current step depends on, the path below the root down to the
current step, and the current step's own sub-steps. Sibling branches and superseded values are left out. The
path is mandatory: if it does not fit the token budget the call fails with a clear error; dependencies
(nearest first) and sub-steps are added while they fit and the rest are reported as omitted.

The layout is made for the engine's KV reuse (it keeps the longest common prefix of a context's tokens and
recomputes everything after the first differing token): ``Task: ...``, then one ``- Label: value`` line per
step in the order its text last changed (``_change_order``: an edited, replaced, rolled-back or re-check
flagged step moves to the tail, an unchanged one keeps its place; a sub-step's label is its path, "Hotel >
Room", so the order needs no nesting), then ``Current step: ...`` last, the one line that moves every turn
(left out when the slice lists only the current step: it would name the one step there is). No counters
or timestamps are rendered. A turn that adds a step or edits the last-changed one recomputes only its line
and the current-step line; an edit of step k recomputes from k's old line on.

Tokens are counted by ``count_tokens``: inside a kernel (the ``task.prompt`` syscall) that is the running
model's own tokenizer (``Kernel.count_tokens``); without a model (``aios tasks prompt``) it is
``estimate_tokens``. ``TaskPrompt.counter`` says which ("tokenizer" or "estimate").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memory.tasktree import TaskError, TaskTreeStore

__all__ = ["TaskBudgetError", "TaskPrompt", "estimate_tokens", "render_node", "synthesize"]

TokenCounter = Callable[[str], int]


class TaskBudgetError(TaskError):
    """The token budget is too small for the active path."""


def estimate_tokens(text: str) -> int:
    """A conservative token estimate (SmolLM2's BPE averages ~4 characters a token on English; 3 leaves room)."""
    return math.ceil(len(text) / 3) if text else 0


@dataclass
class TaskPrompt:
    text: str
    tokens: int
    budget: int
    tree_id: int
    node_id: int
    path: list[int]
    dependencies: list[int]
    children: list[int]
    omitted: list[int] = field(default_factory=list)
    #: How ``tokens`` was counted: "tokenizer" (the model's own) or "estimate" (characters / 3).
    counter: str = "estimate"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def render_node(node: dict[str, Any]) -> str:
    value = node["output"].strip()
    text = f"{node['title']}: {value}" if value else f"{node['title']} ({node['status']})"
    if value and node["status"] not in ("done", "running"):
        text += f" [{node['status']}]"
    if node["needs_recheck"]:
        text += " [needs re-check: something it depends on changed]"
    return text


def _label(tasks: TaskTreeStore, tree_id: int, node: dict[str, Any], root_id: int) -> str:
    """The node's titles from below the root down to it ("Hotel > Room"), so a flat line keeps its place."""
    titles = [n["title"] for n in tasks.active_path(tree_id, node["id"]) if n["id"] != root_id]
    return " > ".join(titles) or node["title"]


def _change_order(node: dict[str, Any]) -> tuple[int, float, int]:
    """Lines in the order their text last changed: a step edited, replaced, rolled back or flagged for re-check
    moves to the tail, so the lines before it (and their KV cache) stay as they were."""
    return (int(bool(node["needs_recheck"])), float(node["updated_at"] or 0.0), int(node["id"]))


def _render(
    tasks: TaskTreeStore,
    root: dict[str, Any],
    deps: list[dict[str, Any]],
    below: list[dict[str, Any]],
    children: list[dict[str, Any]],
) -> str:
    """The slice, prefix-stable: the task, then one line per step in change order (see ``_change_order``),
    then the current step last (it moves every turn; it is one short line, and only there when the slice
    lists more than the current step)."""
    tree_id, root_id = int(root["tree_id"]), int(root["id"])
    lines = [f"Task: {render_node(root)}"]
    steps = {n["id"]: n for n in [*deps, *below, *children]}
    if steps:
        lines.append("Steps:")
        for node in sorted(steps.values(), key=_change_order):
            lines.append(f"- {render_node({**node, 'title': _label(tasks, tree_id, node, root_id)})}")
    if below and len(steps) > 1:  # a slice listing one step needs no pointer to it
        lines.append("Current step: " + " > ".join(n["title"] for n in below))
    return "\n".join(lines)


def synthesize(
    tasks: TaskTreeStore,
    tree_id: int,
    *,
    budget: int,
    node_id: int | None = None,
    count_tokens: TokenCounter = estimate_tokens,
    counter: str | None = None,
) -> TaskPrompt:
    """The task slice of a prompt for ``node_id`` (default: the tree's active node), within ``budget`` tokens
    as ``count_tokens`` counts them (``counter`` names it; default "estimate" for ``estimate_tokens``)."""
    if counter is None:
        counter = "estimate" if count_tokens is estimate_tokens else "tokenizer"
    if budget < 1:
        raise TaskBudgetError(f"a token budget must be positive (got {budget})")
    path = [n for n in tasks.active_path(tree_id, node_id) if n["status"] != "superseded"]
    if not path:
        raise TaskError(f"task tree t{tree_id} has no live path to n{node_id}")
    root, below = path[0], path[1:]
    text = _render(tasks, root, [], below, [])
    need = count_tokens(text)
    if need > budget:
        raise TaskBudgetError(
            f"a budget of {budget} tokens cannot fit the active path of t{tree_id} "
            f"({need} tokens for {len(path)} node(s))",
            "raise the budget or work on a step nearer the root",
        )
    on_path = {n["id"] for n in path}
    deps: list[dict[str, Any]] = []
    omitted: list[int] = []
    for dep in tasks.dependency_closure(list(on_path)):
        if dep["id"] in on_path or dep["status"] == "superseded":
            continue
        candidate = _render(tasks, root, [*deps, dep], below, [])
        if count_tokens(candidate) <= budget:
            deps.append(dep)
        else:
            omitted.append(dep["id"])
    children: list[dict[str, Any]] = []
    for child in tasks.children(path[-1]["id"]):
        candidate = _render(tasks, root, deps, below, [*children, child])
        if count_tokens(candidate) <= budget:
            children.append(child)
        else:
            omitted.append(child["id"])
    text = _render(tasks, root, deps, below, children)
    return TaskPrompt(
        text=text,
        tokens=count_tokens(text),
        budget=budget,
        tree_id=tree_id,
        node_id=path[-1]["id"],
        path=[n["id"] for n in path],
        dependencies=sorted(d["id"] for d in deps),
        children=[c["id"] for c in children],
        omitted=omitted,
        counter=counter,
    )
