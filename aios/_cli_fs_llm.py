"""`aios fs join|summarize|compare|ask`: the fs commands that use the LLM (an in-process kernel runs it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from aios._cli_fs_remote import absolute, daemon, remote
from aios._cli_util import CONTEXT_SETTINGS, print_json, status
from aios.cli_fs import _fs, fs_group

__all__: list[str] = []


def _with_kernel(work: Callable[[Any, Any], Any]) -> Any:
    """Run ``await work(fs, llm)`` inside an in-process kernel (its semfs service and the shared model)."""
    import anyio

    from aios.config import load_config
    from kernel.kernel import load_runtime, open_kernel
    from kernel.sys_fs import KernelLLM, semfs_of

    with _fs():  # fail fast (WriterBusy, one line) if another kernel owns the index
        pass
    config = load_config()
    with status(f"loading model {config.llm.model or 'default'}…"):
        runtime = load_runtime(config)

    async def main() -> Any:
        async with open_kernel(config, runtime=runtime) as kernel:
            return await work(semfs_of(kernel), KernelLLM(kernel, kernel.user))

    try:
        return anyio.run(main)
    except BaseExceptionGroup as group:
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup) -> BaseException:
    from kernel.connect import first_error

    return first_error(group)


@fs_group.command("join", context_settings=CONTEXT_SETTINGS)
@click.argument("sources", nargs=-1, required=True)
@click.option("--into", required=True, help="The new file (inside a mount).")
@click.option("--merge", is_flag=True, help="Let the LLM merge them instead of concatenating.")
def join_cmd(sources: tuple[str, ...], into: str, merge: bool) -> None:
    """Combine files (or @VIEWs) into a new file: concatenated under headers, or merged by the LLM.

    \b
    Example:
      aios fs join notes/a.md notes/b.md --into notes/ab.md
    """
    from memory.semfs.llm_ops import merge as llm_merge
    from memory.semfs.views import concat_files

    client = daemon()
    if client is not None:
        srcs = [absolute(p) for p in sources]
        remote(client, "fs.join", "merging" if merge else "joining", sources=srcs, into=absolute(into), merge=merge)
    elif merge:

        async def work(fs: Any, llm: Any) -> Any:
            import anyio

            text = await llm_merge(fs, llm, list(sources))
            return await anyio.to_thread.run_sync(lambda: fs.write(into, text.encode(), source="join"))

        _with_kernel(work)
    else:
        with _fs() as fs:
            fs.write(into, concat_files(fs, list(sources)).encode(), source="join")
            fs.embed_pending()
    click.echo(f"wrote {into}")


@fs_group.command("summarize", context_settings=CONTEXT_SETTINGS)
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def summarize_cmd(target: str, as_json: bool) -> None:
    """Summarise a file or a view with the local LLM (cached by content).

    \b
    Example:
      aios fs summarize @taxes
    """
    from memory.semfs.llm_ops import summarize

    client = daemon()
    if client is not None:
        result = remote(client, "fs.summarize", f"summarising {target}", target=absolute(target))
    else:
        result = _with_kernel(lambda fs, llm: summarize(fs, llm, target))
    if as_json:
        print_json(result)
        return
    click.echo(result["summary"])


@fs_group.command("compare", context_settings=CONTEXT_SETTINGS)
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
    from memory.semfs.llm_ops import compare

    client = daemon()
    if client is not None:
        result = remote(client, "fs.compare", f"comparing {path}", path=absolute(path), a=a, b=b)
    else:
        result = _with_kernel(lambda fs, llm: compare(fs, llm, path, a, b))
    if as_json:
        print_json(result)
        return
    click.echo(result["comparison"])


@fs_group.command("ask", context_settings=CONTEXT_SETTINGS)
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
    from memory.semfs.llm_ops import DESTRUCTIVE, Plan, plan, run_plan

    def show(the_plan: Any) -> None:
        if as_json:
            return
        click.echo("plan:")
        for n, step in enumerate(the_plan.steps, start=1):
            args = {k: v for k, v in step.model_dump().items() if v not in ("", None) and k != "op"}
            if step.op != "rollback":
                args.pop("steps", None)
            mark = "  [destructive]" if step.op in DESTRUCTIVE else ""
            click.echo(f"  {n}. {step.op} {args}{mark}")

    def confirmed(step: Any) -> bool:
        if yes:
            return True
        try:
            return click.confirm(f"run {step.op} {step.path}?", default=False)
        except click.Abort:  # no terminal to answer on: not confirmed
            return False

    async def work(fs: Any, llm: Any) -> Any:
        import anyio

        the_plan = await plan(fs, llm, " ".join(request))
        show(the_plan)
        if dry_run:
            return the_plan, []

        async def confirm(step: Any) -> bool:
            return await anyio.to_thread.run_sync(confirmed, step)

        return the_plan, await run_plan(fs, llm, the_plan, confirm=confirm)

    client = daemon()
    if client is not None:  # plan in the kernel; show and confirm here; run step by step there
        the_plan = Plan.model_validate(remote(client, "fs.ask", "planning", request=" ".join(request))["plan"])
        show(the_plan)
        results = []
        for step in [] if dry_run else the_plan.steps:
            if step.op in DESTRUCTIVE and not confirmed(step):
                results.append({"op": step.op, "path": step.path, "status": "skipped", "detail": "not confirmed"})
                continue
            one = {"steps": [step.model_dump()]}
            results += remote(client, "fs.run_plan", f"{step.op} {step.path}", plan=one, confirmed=True)["results"]
    else:
        the_plan, results = _with_kernel(work)
    if as_json:
        print_json({"plan": the_plan.model_dump(), "results": results})
        return
    for r in results:
        detail = r["detail"]
        if isinstance(detail, list):
            detail = "\n    ".join(str(d.get("path", d)) if isinstance(d, dict) else str(d) for d in detail) or "(none)"
        click.echo(f"{r['op']} {r['path']}: {r['status']}\n    {detail}")
