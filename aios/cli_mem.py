"""`aios mem`: inspect agent memory through the one door (``mem.*`` syscalls as the user: checked against
``[access.user]``, audited; the running kernel, else one started for the command).

Search is the kernel's hybrid search (BM25 + vectors). A namespace is ``agent:<name>`` (``chat`` alone means
``agent:chat``) or any shared name.
"""

from __future__ import annotations

import time
from typing import Any

import click

from aios._cli_util import CONTEXT_SETTINGS, print_json, status, table

__all__ = ["mem_group", "namespace_of"]

_KINDS = click.Choice(["recall", "archival"])


def namespace_of(text: str) -> str:
    text = text.strip()
    return text if ":" in text else f"agent:{text}"


def _call(syscall: str, **payload: Any) -> Any:
    from kernel.connect import call_as_user

    return call_as_user(syscall, loading=status, **payload)


def _rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **item,
            "source": f"{item['source']['kind']} {item['source']['ref']}".strip(),
            "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(item["created_at"])),
            "tags": ",".join(item["tags"]),
        }
        for item in items
    ]


@click.group("mem", context_settings=CONTEXT_SETTINGS)
def mem_group() -> None:
    """Inspect agent memory: core blocks, recall (message log) and archival items.

    \b
    Examples:
      aios mem namespaces
      aios mem ls chat
      aios mem search chat "hotel in Lisbon"
      aios mem search agent:chat dentist --kind recall --json
    """


@mem_group.command("namespaces", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def namespaces_cmd(as_json: bool) -> None:
    """List the memory namespaces you may read, with their item counts.

    \b
    Example:
      aios mem namespaces --json
    """
    rows = list(_call("mem.namespaces"))
    if as_json:
        print_json({"namespaces": rows})
        return
    table(rows, ("namespace", "core", "recall", "archival"), empty="no memory yet")


@mem_group.command("ls", context_settings=CONTEXT_SETTINGS)
@click.argument("namespace")
@click.option("--kind", type=click.Choice(["all", "core", "recall", "archival"]), default="all", show_default=True)
@click.option("-n", "--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Items per kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(namespace: str, kind: str, limit: int, as_json: bool) -> None:
    """List a namespace's memory: core blocks (and edits staged for the next turn), recent recall, archival.

    \b
    Examples:
      aios mem ls chat
      aios mem ls agent:chat --kind core --json
    """
    ns = namespace_of(namespace)
    out: dict[str, Any] = dict(_call("mem.list", namespace=ns, kind=kind, limit=limit))
    if as_json:
        print_json(out)
        return
    if "core" in out:
        click.echo(click.style(f"core blocks of {ns}", bold=True))
        table(out["core"], ("label", "value", "char_limit", "source_kind", "actor"), empty="  no core blocks")
        if out.get("pending"):
            click.echo(click.style("staged for the next turn boundary", bold=True))
            table(out["pending"], ("label", "value", "actor"), empty="")
    for section in ("recall", "archival"):
        if section in out:
            click.echo(click.style(f"{section} of {ns}", bold=True))
            table(_rows(out[section]), ("id", "when", "source", "tags", "text"), empty=f"  no {section} items")


@mem_group.command("search", context_settings=CONTEXT_SETTINGS)
@click.argument("namespace")
@click.argument("query", nargs=-1, required=True)
@click.option("--kind", "kinds", type=_KINDS, multiple=True, help="recall and/or archival (default both).")
@click.option("--tag", "tags", multiple=True, help="Only archival items with this tag (repeatable).")
@click.option("--since-hours", type=click.FloatRange(min=0), help="Only items from the last N hours.")
@click.option("-n", "--limit", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search_cmd(
    namespace: str,
    query: tuple[str, ...],
    kinds: tuple[str, ...],
    tags: tuple[str, ...],
    since_hours: float | None,
    limit: int,
    as_json: bool,
) -> None:
    """Search a namespace's recall and archival memory (hybrid: full text and meaning).

    \b
    Examples:
      aios mem search chat hotel
      aios mem search chat "passport" --kind archival --tag trip --json
    """
    ns = namespace_of(namespace)
    since = time.time() - since_hours * 3600 if since_hours is not None else None
    payload: dict[str, Any] = {"kinds": list(kinds)} if kinds else {}
    text = " ".join(query)
    hits = list(_call("mem.search", namespace=ns, query=text, tags=list(tags), since=since, limit=limit, **payload))
    if as_json:
        print_json({"namespace": ns, "results": hits})
        return
    table(_rows(hits), ("id", "kind", "when", "source", "tags", "text"), empty=f"nothing in {ns} matches")
