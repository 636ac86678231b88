"""`aios fs join|summarize|compare|ask`: the fs commands that may use the LLM, as syscalls by the user through
the one door (the running kernel, else one started for the command). aios/cli_fs.py adds them to `aios fs`."""

from __future__ import annotations

from typing import Any

import click

from aios._cli_fs_remote import Door, absolute, change, settle
from aios._cli_util import CONTEXT_SETTINGS, print_json

__all__ = ["LLM_COMMANDS"]


@click.command("join", context_settings=CONTEXT_SETTINGS)
@click.argument("sources", nargs=-1, required=True)
@click.option("--into", required=True, help="The new file (inside a mount).")
@click.option("--merge", is_flag=True, help="Let the LLM merge them instead of concatenating.")
def join_cmd(sources: tuple[str, ...], into: str, merge: bool) -> None:
    """Combine files (or @VIEWs) into a new file: concatenated under headers, or merged by the LLM.

    \b
    Example:
      aios fs join notes/a.md notes/b.md --into notes/ab.md
    """
    payload = {"sources": [absolute(p) for p in sources], "into": absolute(into), "merge": merge}

    async def work(door: Door) -> None:
        await door.call("fs.join", "merging" if merge else "joining", **payload)
        await settle(door)

    change(work)
    click.echo(f"wrote {into}")


@click.command("summarize", context_settings=CONTEXT_SETTINGS)
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def summarize_cmd(target: str, as_json: bool) -> None:
    """Summarise a file or a view with the local LLM (cached by content).

    \b
    Example:
      aios fs summarize @taxes
    """
    result = change(lambda door: door.call("fs.summarize", f"summarising {target}", target=absolute(target)))
    if as_json:
        print_json(result)
        return
    click.echo(result["summary"])


@click.command("compare", context_settings=CONTEXT_SETTINGS)
@click.argument("path")
@click.argument("a", type=int, default=-1)
@click.argument("b", type=int, default=0)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_cmd(path: str, a: int, b: int, as_json: bool) -> None:
    """Say in words what changed between two versions (default: previous and latest).

    \b
    Example:
      aios fs compare ~/notes/todo.md 1 0
    """
    result = change(lambda door: door.call("fs.compare", f"comparing {path}", path=absolute(path), a=a, b=b))
    if as_json:
        print_json(result)
        return
    click.echo(result["comparison"])


@click.command("ask", context_settings=CONTEXT_SETTINGS)
@click.argument("request", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Run destructive steps without asking.")
@click.option("--dry-run", is_flag=True, help="Show the plan only.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and results as JSON.")
def ask_cmd(request: tuple[str, ...], yes: bool, dry_run: bool, as_json: bool) -> None:
    """Ask in plain words; the LLM makes a typed plan, shown first; destructive steps need confirmation.

    \b
    Examples:
      aios fs ask "find my notes about the garden"
      aios fs ask "undo the last change to ~/notes/todo.md"
    """
    destructive: set[str] = set()

    def show(plan: dict[str, Any]) -> None:
        if as_json:
            return
        click.echo("plan:")
        for n, step in enumerate(plan["steps"], start=1):
            args = {k: v for k, v in step.items() if v not in ("", None) and k != "op"}
            if step["op"] != "rollback":
                args.pop("steps", None)
            mark = "  [destructive]" if step["op"] in destructive else ""
            click.echo(f"  {n}. {step['op']} {args}{mark}")

    def confirmed(step: dict[str, Any]) -> bool:
        if yes:
            return True
        try:
            return click.confirm(f"run {step['op']} {step['path']}?", default=False)
        except click.Abort:  # no terminal to answer on: not confirmed
            return False

    async def work(door: Door) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Plan in the kernel; show and confirm here; run step by step there (each step its own syscall)."""
        import anyio

        asked = await door.call("fs.ask", "planning", request=" ".join(request))
        plan = asked["plan"]
        destructive.update(asked["destructive_ops"])
        show(plan)
        results: list[dict[str, Any]] = []
        for step in [] if dry_run else plan["steps"]:
            if step["op"] in destructive and not await anyio.to_thread.run_sync(confirmed, step):
                results.append({"op": step["op"], "path": step["path"], "status": "skipped", "detail": "not confirmed"})
                continue
            one = {"steps": [step]}
            label = f"{step['op']} {step['path']}".strip()
            results += (await door.call("fs.run_plan", label, plan=one, confirmed=True))["results"]
        if results:
            await settle(door)
        return plan, results

    plan, results = change(work)
    if as_json:
        print_json({"plan": plan, "results": results})
        return
    for r in results:
        detail = r["detail"]
        if isinstance(detail, list):
            detail = "\n    ".join(str(d.get("path", d)) if isinstance(d, dict) else str(d) for d in detail) or "(none)"
        click.echo(f"{r['op']} {r['path']}: {r['status']}\n    {detail}")


LLM_COMMANDS = (join_cmd, summarize_cmd, compare_cmd, ask_cmd)
