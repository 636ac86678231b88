"""`aios mem`: inspect agent memory (read-only; the store is opened without writing).

From the CLI, search ranks by full text (BM25) only; agents' ``mem.search`` inside the kernel is hybrid
(BM25 + vectors). A namespace is ``agent:<name>`` (``chat`` alone means ``agent:chat``) or any shared name.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from aios._cli_util import CONTEXT_SETTINGS, print_json, table

if TYPE_CHECKING:
    from memory.agent_memory import AgentMemory

__all__ = ["mem_group", "namespace_of"]

_KINDS = click.Choice(["recall", "archival"])


def namespace_of(text: str) -> str:
    text = text.strip()
    return text if ":" in text else f"agent:{text}"


@contextmanager
def _memory() -> Iterator[AgentMemory | None]:
    from memory.agent_memory import AgentMemory
    from memory.store import Store

    store = Store.open_read_only()
    if store is None or not store.db["mem_core"].exists():
        yield None
        return
    try:
        yield AgentMemory(store.db, read_only=True)
    finally:
        store.close()


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
      aios mem ls chat
      aios mem search chat "hotel in Lisbon"
      aios mem search agent:chat dentist --kind recall --json
    """


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
    with _memory() as memory:
        out: dict[str, Any] = memory.list_items(ns, kind=kind, limit=limit) if memory else {"namespace": ns}
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
    """Search a namespace's recall and archival memory (full text from the CLI).

    \b
    Examples:
      aios mem search chat hotel
      aios mem search chat "passport" --kind archival --tag trip --json
    """
    ns = namespace_of(namespace)
    since = time.time() - since_hours * 3600 if since_hours is not None else None
    with _memory() as memory:
        hits = (
            memory.search(
                ns, " ".join(query), kinds=tuple(kinds) or ("recall", "archival"), tags=tags, since=since, limit=limit
            )
            if memory
            else []
        )
    if as_json:
        print_json({"namespace": ns, "results": hits})
        return
    table(_rows(hits), ("id", "kind", "when", "source", "tags", "text"), empty=f"nothing in {ns} matches")
