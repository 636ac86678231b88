"""The built-in ``files`` agent: natural-language file commands over the semantic file system.

Each message becomes a typed plan of fs operations (``fs.ask``, grammar-constrained), which is shown first;
destructive steps (write, delete, move, rollback) run only after the user answers yes; then ``fs.run_plan``
runs it and the results are reported. Everything goes through ``fs.*`` syscalls, so access control applies.
"""

from __future__ import annotations

import json
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl

__all__ = ["FilesAgent", "render_plan", "render_results"]

YES = frozenset({"y", "yes", "ok", "sure", "do it", "confirm"})


def render_plan(plan: dict[str, Any]) -> str:
    lines = ["Plan:"]
    for n, step in enumerate(plan["steps"], start=1):
        args = ", ".join(f"{k}={v!r}" for k, v in step.items() if k not in ("op", "steps") and v)
        if step["op"] == "rollback":
            args += f", steps={step['steps']}"
        mark = "  (changes files)" if step["op"] in ("write", "delete", "move", "rollback") else ""
        lines.append(f"  {n}. {step['op']} {args}{mark}")
    return "\n".join(lines) + "\n"


def render_results(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        detail = r["detail"]
        if isinstance(detail, list):
            detail = (
                "\n    ".join(
                    f"{d['path']}  ({d['score']:.3f})" if isinstance(d, dict) and "path" in d else str(d)
                    for d in detail
                )
                or "(nothing found)"
            )
        elif not isinstance(detail, str):
            detail = json.dumps(detail, default=str)[:800]
        out.append(f"{r['op']} {r['path']}: {r['status']}\n    {detail}")
    return "\n".join(out) + "\n"


class FilesAgent(Agent):
    manifest = Manifest(
        name="files",
        description="Find, read and change your mounted files in plain words (plans are shown; changes need a yes).",
        capabilities=Capabilities(files_read=("~",), files_write=("~",), llm_token_budget=200_000),
        interactive=True,
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        message = goal or await ctx.input()
        last: str | None = None
        while message is not None:
            last = await self.handle(ctx, message)
            await ctx.end_turn()
            message = await ctx.input()
        return last

    async def handle(self, ctx: Context, message: str) -> str:
        try:
            planned = await ctx.call("fs.ask", request=message)
        except AiosError as exc:
            await ctx.write(f"I could not plan that: {exc.one_line()}\n")
            return "no plan"
        plan = planned["plan"]
        await ctx.write(render_plan(plan))
        confirmed = False
        if planned["destructive"]:
            await ctx.write("This changes files. Run it? (yes/no)\n")
            await ctx.end_turn()
            answer = await ctx.input()
            confirmed = answer is not None and answer.strip().lower() in YES
            if not confirmed:
                await ctx.write("Not confirmed: only the steps that change nothing will run.\n")
        try:
            done = await ctx.call("fs.run_plan", plan=plan, confirmed=confirmed)
        except AiosError as exc:
            await ctx.write(f"Refused: {exc.one_line()}\n")
            return "refused"
        text = render_results(done["results"])
        await ctx.write(text)
        return text


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [FilesAgent]
