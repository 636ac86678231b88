"""`aios tasks`: inspect agents' task-memory trees, through the one door (``task.*`` syscalls as the user:
checked against ``[access.user]``, audited; the running kernel, else one started for the command)."""

from __future__ import annotations

from typing import Any

import click

from aios._cli_util import CONTEXT_SETTINGS, print_json, status, table
from aios.errors import UsageError

__all__ = ["parse_ref", "tasks_group"]


def _call(syscall: str, **payload: Any) -> Any:
    from kernel.connect import call_as_user

    return call_as_user(syscall, loading=status, **payload)


def parse_ref(text: str, prefix: str) -> int:
    """``t3``/``3`` -> 3 (``prefix`` is ``t`` for trees, ``n`` for nodes)."""
    raw = text.strip().lower().removeprefix(prefix)
    if not raw.isdigit() or int(raw) < 1:
        kind = "task tree" if prefix == "t" else "task node"
        raise UsageError(f"not a {kind} id: {text!r}", f"use {prefix}<number>, e.g. {prefix}1")
    return int(raw)


def _label(node: dict[str, Any]) -> str:
    from rich.markup import escape

    text = f"n{node['id']} {escape('[' + node['status'] + ']')} {escape(node['title'])}"
    if node["output"]:
        text += f": {escape(node['output'])}"
    text += f"  v{node['version']}"
    if node["depends_on"]:
        text += "  deps " + ",".join(f"n{d}" for d in node["depends_on"])
    if node["needs_recheck"]:
        text += "  [yellow]needs re-check[/]"
    if node["status"] == "superseded":
        by = f" by n{node['superseded_by']}" if node["superseded_by"] else ""
        return f"[dim strike]{text}[/][dim]{by}[/]"
    return text


def render_tree(tree: dict[str, Any], nodes: list[dict[str, Any]]) -> Any:
    """A rich Tree of the task tree, children in order, the active node marked."""
    from rich.markup import escape
    from rich.tree import Tree

    kids: dict[int | None, list[dict[str, Any]]] = {}
    for node in sorted(nodes, key=lambda n: (n["position"], n["id"])):
        kids.setdefault(node["parent_id"], []).append(node)
    out = Tree(f"[bold]t{tree['id']}[/] {escape(tree['title'])}  owner {escape(tree['owner'])}  pid {tree['pid']}")

    def add(parent: Any, node: dict[str, Any]) -> None:
        mark = "[bold green]▶ [/]" if node["id"] == tree["active_id"] else ""
        branch = parent.add(mark + _label(node))
        for child in kids.get(node["id"], []):
            add(branch, child)

    for root in kids.get(None, []):
        add(out, root)
    return out


@click.group("tasks", context_settings=CONTEXT_SETTINGS)
def tasks_group() -> None:
    """Inspect agents' task trees: the steps, their values, versions and dependencies.

    \b
    Examples:
      aios tasks tree            # every task tree
      aios tasks tree 12         # the trees of process 12
      aios tasks tree t3 --json
      aios tasks show n17
    """


@tasks_group.command("tree", context_settings=CONTEXT_SETTINGS)
@click.argument("which", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tree_cmd(which: str | None, as_json: bool) -> None:
    """Show task trees: all (no argument), a process's (PID) or one (TASK, e.g. t3).

    \b
    Examples:
      aios tasks tree
      aios tasks tree 12
      aios tasks tree t3 --json | jq '.trees[0].nodes[] | {id, title, status}'
    """
    from rich.console import Console

    if which is None:
        rows = list(_call("task.trees"))
        if as_json:
            print_json({"trees": rows})
        else:
            for row in rows:
                row["ref"] = f"t{row['id']}"
                row["active"] = f"n{row['active_id']}"
            table(rows, ("ref", "owner", "pid", "title", "active"), empty="no task trees yet")
        return
    if which.isdigit():
        trees = list(_call("task.trees", pid=int(which), nodes=True))
        if not trees:
            raise UsageError(f"process {which} has no task tree you may see", "see `aios tasks tree`")
    else:
        found = _call("task.get", tree=parse_ref(which, "t"))
        trees = [{**found["tree"], "nodes": found["nodes"]}]
    if as_json:
        print_json({"trees": trees})
        return
    console = Console()
    for tree in trees:
        console.print(render_tree(tree, tree["nodes"]))


@tasks_group.command("show", context_settings=CONTEXT_SETTINGS)
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(node: str, as_json: bool) -> None:
    """Show one step (NODE, e.g. n17): its value, relations and every version with its actor.

    \b
    Example:
      aios tasks show n17
    """
    row = dict(_call("task.show", node=parse_ref(node, "n")))
    if as_json:
        print_json(row)
        return
    click.echo(f"n{row['id']}  {row['title']}  [{row['status']}]  v{row['version']}  in t{row['tree_id']}")
    for key in ("input", "output"):
        if row[key]:
            click.echo(f"  {key}: {row[key]}")
    if row["parent_id"]:
        click.echo(f"  parent: n{row['parent_id']}")
    for key in ("depends_on", "dependents"):
        if row[key]:
            click.echo(f"  {key.replace('_', ' ')}: {', '.join(f'n{d}' for d in row[key])}")
    if row["needs_recheck"]:
        click.echo("  needs re-check: something it depends on changed")
    if row["superseded_by"]:
        click.echo(f"  superseded by: n{row['superseded_by']}")
    table(row["versions"], ("version", "status", "title", "output", "actor", "change"), empty="no versions")


@tasks_group.command("prompt", context_settings=CONTEXT_SETTINGS)
@click.argument("task")
@click.option("--node", help="The step to build the prompt for (default: the tree's active step).")
@click.option("--budget", type=click.IntRange(min=1), default=600, show_default=True, help="Token budget.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def prompt_cmd(task: str, node: str | None, budget: int, as_json: bool) -> None:
    """Show the task slice an agent's prompt gets for a step: its path from the root plus dependencies.

    Tokens are counted with the running model's tokenizer (a remote model's are estimated; the JSON's
    `counter` says which).

    \b
    Examples:
      aios tasks prompt t1
      aios tasks prompt t1 --node n4 --budget 200 --json
    """
    tree_id = parse_ref(task, "t")
    node_id = parse_ref(node, "n") if node else None
    prompt = dict(_call("task.prompt", tree=tree_id, node=node_id, budget=budget))
    if as_json:
        print_json(prompt)
        return
    click.echo(prompt["text"])
    omitted = f", omitted {', '.join(f'n{n}' for n in prompt['omitted'])}" if prompt.get("omitted") else ""
    how = "estimated" if prompt.get("counter") == "estimate" else "counted by the model's tokenizer"
    click.echo(click.style(f"{prompt['tokens']} of {budget} tokens ({how}){omitted}", dim=True), err=True)
