"""The built-in ``planner`` agent: plans a goal as parts that do not depend on each other, runs them all at once,
and answers each from its own results.

The plan is read off the goal's structure (``subgoals``: "X, and Y", "X; Y", a second question) and its
dependencies ("then multiply *it*": a part that works on an earlier result waits for it). Independent parts run
concurrently, each as the worker runs a step: the kernel narrows the catalog, the tool and its arguments are
chosen under grammars (values copied from the goal, not written), the call is checked by access control, and
the answer is read off the results. Their tool calls and model requests overlap in time; the kernel batches the
model work of all of them. A chain (every part after the first builds on the one before) has nothing to run in
parallel: it runs step by step, as the worker does.
"""

from __future__ import annotations

import anyio

from aios.api import Agent, Capabilities, Context, Manifest
from aios.hookspecs import hookimpl
from plugins.worker import WorkerAgent, refers_back, subgoals

__all__ = ["PlannerAgent", "plan_parts"]


def plan_parts(goal: str) -> list[list[str]]:
    """The goal as a plan: groups of parts that run one after another within a group (each builds on the one
    before), the groups at once. ``"A, and B, then C with it"`` is ``[["A"], ["B", "C with it"]]``."""
    groups: list[list[str]] = []
    for part in subgoals(goal):
        if groups and refers_back(part):
            groups[-1].append(part)
        else:
            groups.append([part])
    return groups


class PlannerAgent(WorkerAgent):
    manifest = Manifest(
        name="planner",
        description="Plan a goal as independent parts, run their MCP tool calls at once, then answer each part.",
        # Every configured tool may be used; the user's policy narrows this (ask/deny per tool).
        capabilities=Capabilities(tools=("*",), llm_token_budget=100_000),
    )

    async def solve(self, ctx: Context, goal: str) -> str | None:
        groups = plan_parts(goal)
        if len(groups) < 2:
            return await super().solve(ctx, goal)  # one part, or a chain: nothing to run at once
        await ctx.write(f"plan: {len(groups)} parts at once\n")
        for n, group in enumerate(groups, 1):
            await ctx.write(f"  p{n}: {', then '.join(group)}\n")
        answers: list[str | None] = [None] * len(groups)

        async def run_group(n: int, group: list[str]) -> None:
            answers[n] = await WorkerAgent.solve(self, ctx, ", then ".join(group))

        async with anyio.create_task_group() as tg:
            for n, group in enumerate(groups):
                tg.start_soon(run_group, n, group)
        got = [a for a in answers if a]
        return "; ".join(got) if got else None


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [PlannerAgent]
