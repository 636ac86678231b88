"""The built-in ``planner`` agent: turns a goal into a parallel plan of MCP tool calls, runs it, answers.

It narrows the catalog to a few candidate tools (``tool.search``), has the model write the plan under a
grammar built from those candidates' schemas, runs it with ``tool.plan`` (every ready step at once, each step
checked by access control), and answers from the results, replanning once if a step failed.
"""

from __future__ import annotations

import json

from aios.api import Agent, Capabilities, Context, Manifest
from aios.hookspecs import hookimpl

__all__ = ["PlannerAgent"]


class PlannerAgent(Agent):
    manifest = Manifest(
        name="planner",
        description="Plan and run read-only MCP tool calls in parallel for a goal, then answer from the results.",
        # Every configured tool may be proposed; the user's policy narrows this (ask/deny per tool).
        capabilities=Capabilities(tools=("*",)),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        from tools.planner import Planner

        if not goal.strip():
            await ctx.write("Give the planner a goal, e.g. `aios run planner 'what time is it in Tokyo?'`\n")
            return None
        outcome = await Planner(ctx).run(goal)
        for n, attempt in enumerate(outcome["attempts"], 1):
            await ctx.write(f"plan {n} (candidates: {', '.join(attempt['candidates']) or 'none'}):\n")
            for step in attempt["steps"]:
                await ctx.write(f"  {step['id']}: {step['tool']} {json.dumps(step.get('args', {}))}\n")
            for problem in attempt["problems"]:
                await ctx.write(f"  problem: {problem}\n")
            for step_id, result in ((attempt["run"] or {}).get("results") or {}).items():
                mark = "error" if result["is_error"] else "ok"
                await ctx.write(
                    f"  [{step_id}] {mark} {result['elapsed_s']:.2f}s {' '.join(result['text'].split())[:200]}\n"
                )
        await ctx.write(outcome["answer"] + "\n")
        await ctx.end_turn()
        return outcome["answer"]


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [PlannerAgent]
