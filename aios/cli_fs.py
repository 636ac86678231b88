"""`aios fs …`: the semantic file system from the command line.

Every command is parse → one trip through aios/_cli_fs_remote.py → render: ``fs.*`` syscalls by the user
through the one door (the running kernel, else one started for the command), checked and audited like any
agent's.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from aios._cli_fs_llm import LLM_COMMANDS
from aios._cli_fs_remote import Door, absolute, change, read, settle
from aios._cli_util import CONTEXT_SETTINGS, print_json, table
from aios.errors import UsageError

__all__ = ["fs_group"]


@click.group("fs", context_settings=CONTEXT_SETTINGS)
def fs_group() -> None:
    """Semantic file system: mount folders, search them by meaning, keep versions.

    \b
    Examples:
      aios fs mount ~/notes
      aios fs search "how do I renew the certificate" --k 5
      aios fs history ~/notes/todo.md && aios fs rollback ~/notes/todo.md --steps 1
    """


@fs_group.command("mount", context_settings=CONTEXT_SETTINGS)
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--name", help="Mount name (default: the folder's name).")
@click.option("--no-embed", is_flag=True, help="Index for keyword search only; vectors fill in later.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def mount_cmd(path: str, name: str | None, no_embed: bool, as_json: bool) -> None:
    """Mount a folder and index it (nothing is written inside it).

    \b
    Example:
      aios fs mount ~/notes --name notes
    """

    async def work(door: Door) -> tuple[dict[str, Any], dict[str, Any]]:
        out = await door.call("fs.mount", f"mounting {path}", path=absolute(path), name=name)
        stats = out["stats"]
        stats["vectors_pending"] = await settle(door, stats, embed=not no_embed)
        return out["mount"], stats

    info, stats = change(work)
    if as_json:
        print_json({"mount": info, "stats": stats})
        return
    _print_stats(f"mounted {info['name']} at {info['path']}", stats)


def _print_stats(title: str, stats: dict[str, Any]) -> None:
    click.echo(title)
    click.echo(
        f"  {stats['files']} files ({stats['indexed']} indexed, {stats['unchanged']} unchanged, "
        f"{stats['skipped']} skipped, {stats['deleted']} removed), {stats['chunks_added']} new chunks "
        f"in {stats.get('seconds', 0)}s: {stats.get('files_per_s', 0)} files/s, "
        f"{stats.get('chunks_per_s', 0)} chunks/s"
    )
    if "vectors" in stats:
        click.echo(f"  {stats['vectors']} vectors in {stats['vectors_seconds']}s ({stats['vectors_per_s']}/s)")
    if stats.get("vectors_pending"):
        click.echo(f"  {stats['vectors_pending']} vectors pending (keyword search works already)")
    if stats.get("missing_root"):
        click.echo("  the folder is missing: its index is kept until you unmount it")


@fs_group.command("unmount", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
def unmount_cmd(name: str) -> None:
    """Forget a mount (its index and versions). The folder is not touched.

    \b
    Example:
      aios fs unmount notes
    """
    target = absolute(name) if "/" in name or name.startswith(("~", ".")) else name

    async def work(door: Door) -> dict[str, Any]:
        info = await door.call("fs.unmount", f"unmounting {name}", name=target)
        await settle(door)  # the mount's vectors leave chroma through the outbox
        return dict(info)

    info = change(work)
    kept = info.get("versions_kept", 0)
    history = f"; its history ({kept} versions) is kept for a later mount" if kept else ""
    click.echo(f"unmounted {info['name']} ({info['path']}), {info['chunks_removed']} chunks removed{history}")


@fs_group.command("mounts", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def mounts_cmd(as_json: bool) -> None:
    """List mounts with file, chunk and pending-vector counts.

    \b
    Example:
      aios fs mounts --json
    """
    rows = read("fs.mounts")["mounts"]
    if as_json:
        print_json({"mounts": rows})
        return
    for row in rows:
        row["state"] = "ok" if row["present"] else "MISSING"
    table(
        rows,
        ("name", "path", "state", "files", "skipped", "chunks", "vectors_pending"),
        empty="no mounts (add one with `aios fs mount FOLDER`)",
    )


@fs_group.command("index", context_settings=CONTEXT_SETTINGS)
@click.argument("path", type=click.Path())
@click.option("--name", help="Mount name if the folder is not mounted yet.")
@click.option("--no-embed", is_flag=True, help="Return once keyword-searchable; do not wait for vectors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def index_cmd(path: str, name: str | None, no_embed: bool, as_json: bool) -> None:
    """Index a folder now, in the foreground (mounting it if needed); returns when it is searchable.

    \b
    Example:
      aios fs index ~/notes && aios fs search "tax return deadline"
    """
    folder = absolute(path)

    async def work(door: Door) -> dict[str, Any]:
        if name and not await _mounted(door, folder):  # --name names a new mount; mounting indexes it
            stats = (await door.call("fs.mount", f"indexing {path}", path=folder, name=name))["stats"]
        else:
            stats = await door.call("fs.index", f"indexing {path}", path=folder)
        stats["vectors_pending"] = await settle(door, stats, embed=not no_embed)
        return dict(stats)

    stats = change(work)
    if as_json:
        print_json(stats)
        return
    _print_stats(f"indexed {path}", stats)


async def _mounted(door: Door, folder: str) -> bool:
    """Whether ``folder`` is a mount or inside one (of those the user may list)."""
    import os

    from aios.errors import PermissionDenied

    try:
        mounts = (await door.call("fs.mounts"))["mounts"]
    except PermissionDenied:  # the user may not list mounts: fs.mount says whether this one may be made
        return False
    names = {folder, os.path.realpath(folder)}
    return any(n == m["path"] or n.startswith(m["path"].rstrip("/") + "/") for m in mounts for n in names)


def _excerpt(chunk: str, terms: list[str], lines: int = 6) -> tuple[str, list[str]]:
    body = chunk.splitlines()
    stems = [t[: max(4, len(t) - 2)] for t in terms if len(t) >= 3]
    first = next((i for i, line in enumerate(body) if any(s in line.lower() for s in stems)), 0)
    start = max(0, first - 1)
    return "\n".join(body[start : start + lines]), stems


@fs_group.command("search", context_settings=CONTEXT_SETTINGS)
@click.argument("query", nargs=-1, required=True)
@click.option("-k", "--k", "k", default=10, show_default=True, help="How many files.")
@click.option("--mount", help="Only this mount.")
@click.option("--glob", help="Only paths matching this glob (e.g. '*.md', 'projects/*').")
@click.option("--type", "type_", help="markdown, code, pdf, docx, text, or an extension like .py.")
@click.option("--since", help="Only files changed since: 30m, 2h, 7d or an ISO time.")
@click.option("--view", help="Only files in this view (see `aios fs group`).")
@click.option("--mode", type=click.Choice(["hybrid", "keyword", "semantic"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [{"path", "score", "chunk", …}]}.')
def search_cmd(
    query: tuple[str, ...],
    k: int,
    mount: str | None,
    glob: str | None,
    type_: str | None,
    since: str | None,
    view: str | None,
    mode: str,
    as_json: bool,
) -> None:
    """Search mounted files by meaning and by keyword; best chunk per file, best first.

    \b
    Examples:
      aios fs search "notes about renewing the TLS certificate"
      aios fs search --mode keyword --type .py "retry_backoff" --json
    """
    text = " ".join(query)
    views = view.removeprefix("@") if view else None
    payload = {"mount": mount, "glob": glob, "type": type_, "since": since, "view": views}
    hits = read("fs.search", query=text, k=k, mode=mode, **{k_: v for k_, v in payload.items() if v})["results"]
    if as_json:
        print_json({"query": text, "mode": mode, "results": hits})
        return
    if not hits:
        click.echo(
            f"no results for '{text}'"
            + (" with these filters" if any((mount, glob, type_, since, view)) else "")
            + " (try --mode semantic, or check `aios fs mounts`)"
        )
        return
    # click.style, not rich: rich's import alone is a fifth of this command's budget when the daemon answers.
    # (Styles are dropped when stdout is not a terminal.)
    for n, hit in enumerate(hits, start=1):
        where = f"lines {hit['start_line']}-{hit['end_line']}" + (f" · {hit['heading']}" if hit["heading"] else "")
        click.echo(
            click.style(f"{n}. ", bold=True)
            + click.style(hit["path"], bold=True, fg="cyan")
            + f"  score {hit['score']:.4f}  "
            + click.style(where, dim=True)
        )
        excerpt, stems = _excerpt(hit["chunk"], hit["terms"])
        click.echo(_highlight(excerpt, stems) + "\n")


def _highlight(text: str, stems: list[str]) -> str:
    """Each word starting with one of ``stems`` in bold yellow (one pass, so styles never nest)."""
    import re

    if not stems:
        return text
    words = re.compile(r"(?i)\b(?:" + "|".join(re.escape(s) for s in stems) + r")\w*")
    return words.sub(lambda m: click.style(m.group(0), bold=True, fg="yellow"), text)


@fs_group.command("ls", context_settings=CONTEXT_SETTINGS)
@click.argument("target", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls_cmd(target: str | None, as_json: bool) -> None:
    """List indexed files: all, of a mount, of a folder, or of a view (@VIEW).

    \b
    Examples:
      aios fs ls notes
      aios fs ls @taxes
    """
    rows = read("fs.ls", target=_target(target))["files"]
    if as_json:
        print_json({"files": rows})
        return
    for row in rows:
        row["changed"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["mtime"])) if row["mtime"] else "-"
        row["note"] = row.get("grp") or (f"skipped: {row['skipped']}" if row["skipped"] else "")
        row["file"] = f"{row['mount']}/{row['relpath']}"
    table(rows, ("file", "kind", "size", "changed", "note"), empty="no files")


@fs_group.command("cat", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.option("--version", "version", type=int, help="A recorded version (1 = oldest, 0 = latest, -1 = previous).")
def cat_cmd(path: str, version: int | None) -> None:
    """Print a file, or one of its recorded versions.

    \b
    Example:
      aios fs cat ~/notes/todo.md --version -1
    """
    click.echo(read("fs.cat", path=absolute(path), version=version)["text"], nl=False)


@fs_group.command("history", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_cmd(path: str, as_json: bool) -> None:
    """Every recorded version of a file, oldest first.

    \b
    Example:
      aios fs history ~/notes/todo.md
    """
    rows = read("fs.history", path=absolute(path))["versions"]
    if as_json:
        print_json({"path": path, "versions": rows})
        return
    for row in rows:
        row["when"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
        row["content"] = "(deleted)" if row["deleted"] else (row["sha256"] or "")[:12]
    table(rows, ("version", "when", "source", "size", "content"), empty="no versions")


@fs_group.command("diff", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.argument("a", type=int, default=-1)
@click.argument("b", type=int, default=0)
def diff_cmd(path: str, a: int, b: int) -> None:
    """Unified diff between two versions (default: previous -1 and latest 0).

    \b
    Example:
      aios fs diff ~/notes/todo.md 1 3
    """
    out = read("fs.diff", path=absolute(path), a=a, b=b)["diff"]
    click.echo(out or "no differences", nl=not out)


@fs_group.command("rollback", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.option("--steps", type=int, help="Go back N versions.")
@click.option("--at", "at", help="Restore the version current at this time (30m, 2h, 7d ago, or ISO).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def rollback_cmd(path: str, steps: int | None, at: str | None, as_json: bool) -> None:
    """Restore an earlier version; the rollback is itself a version, so it can be undone.

    \b
    Examples:
      aios fs rollback ~/notes/todo.md --steps 1
      aios fs rollback ~/notes/todo.md --at 2h
    """

    async def work(door: Door) -> dict[str, Any]:
        result = await door.call("fs.rollback", f"rolling back {path}", path=absolute(path), steps=steps, at=at)
        await settle(door)
        return dict(result)

    result = change(work)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"restored version {result['restored']} of {result['path']}"
        + ("" if result["changed"] else " (it was already the current content)")
    )


@fs_group.command("group", context_settings=CONTEXT_SETTINGS)
@click.argument("query", nargs=-1)
@click.option("--name", required=True, help="The view's name (use it as @NAME).")
@click.option("--mode", type=click.Choice(["hybrid", "keyword", "semantic"]), default="hybrid", show_default=True)
@click.option("-k", "--k", "k", default=20, show_default=True, help="Files taken from the query.")
@click.option("--clusters", type=int, help="Instead of a query: split the files into K semantic groups.")
@click.option("--mount", help="Only this mount.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def group_cmd(
    query: tuple[str, ...], name: str, mode: str, k: int, clusters: int | None, mount: str | None, as_json: bool
) -> None:
    """Make a named view from a query, or split a mount into K semantic clusters.

    \b
    Examples:
      aios fs group "tax documents" --name taxes && aios fs ls @taxes
      aios fs group --clusters 5 --mount notes --name topics
    """
    if not clusters and not query:
        raise UsageError("give a QUERY or --clusters K")
    payload = {"name": name, "mode": mode, "k": k, "clusters": clusters, "mount": mount}
    result = change(lambda door: door.call("fs.group", f"grouping @{name}", query=" ".join(query) or None, **payload))
    if as_json:
        print_json(result)
        return
    click.echo(
        f"view @{result['view']}: {result['files']} files"
        + ("".join(f"\n  {g}: {n}" for g, n in result["groups"].items() if g))
    )


@fs_group.command("views", context_settings=CONTEXT_SETTINGS)
@click.option("--drop", "drop", metavar="VIEW", help="Delete this view (the files are untouched).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def views_cmd(drop: str | None, as_json: bool) -> None:
    """List the named views made by `aios fs group` (or drop one).

    \b
    Example:
      aios fs views && aios fs views --drop taxes
    """
    if drop:
        dropped = change(lambda door: door.call("fs.views", drop=drop))["dropped"]
        click.echo(f"dropped @{dropped}")
        return
    rows = read("fs.views")["views"]
    if as_json:
        print_json({"views": rows})
        return
    for row in rows:
        row["name"] = "@" + row["name"]
    table(rows, ("name", "kind", "query", "files"), empty="no views (make one with `aios fs group QUERY --name V`)")


@fs_group.command("write", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.option("--text", help="The new content (default: read it from stdin).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def write_cmd(path: str, text: str | None, as_json: bool) -> None:
    """Write a file inside a mount and index it; the write is a version (undo with `aios fs rollback`).

    \b
    Example:
      echo "buy milk" | aios fs write ~/notes/todo.md
    """
    data = sys.stdin.read() if text is None else text

    async def work(door: Door) -> dict[str, Any]:
        result = await door.call("fs.write", f"writing {path}", path=absolute(path), text=data)
        await settle(door)
        return dict(result)

    result = change(work)
    if as_json:
        print_json(result)
        return
    click.echo(f"wrote {result['path']} ({result['outcome']})")


@fs_group.command("check", context_settings=CONTEXT_SETTINGS)
@click.option("--rebuild", is_flag=True, help="Regenerate FTS and every vector from SQLite.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check_cmd(rebuild: bool, as_json: bool) -> None:
    """Report drift between SQLite and its derived indexes (FTS5, chroma); --rebuild regenerates them.

    \b
    Example:
      aios fs check || aios fs check --rebuild
    """
    if rebuild:
        report = change(lambda door: door.call("fs.check", "rebuilding", rebuild=True))
    else:
        report = read("fs.check", rebuild=False)
    if as_json:
        print_json(report)
    else:
        for key, value in report.items():
            if key not in ("drift", "ok"):
                click.echo(f"{key:>24}: {value}")
        click.echo(
            "consistent" if report["ok"] else f"drift: {', '.join(report['drift'])} (fix: aios fs check --rebuild)"
        )
    if not report["ok"]:
        raise SystemExit(1)


def _target(target: str | None) -> str | None:
    """A listing target for the kernel: a path made absolute; a mount's name or @VIEW as given."""
    if target is None or target.startswith("@") or ("/" not in target and not target.startswith(("~", "."))):
        return target
    return absolute(target)


for _command in LLM_COMMANDS:
    fs_group.add_command(_command)
