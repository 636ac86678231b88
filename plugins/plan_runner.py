"""The built-in ``plan`` agent: runs a saved tool plan (no LLM) as a kernel process.

``aios plan run PLAN.json`` starts it, so a plan run from the CLI is a process like any other: visible in
``aios ps`` and the TUI, its tool calls checked against its capabilities (at most the user's), accounted and
audited. Its goal is the plan as JSON; its result is the plan run as JSON (results per step and metrics).
"""

from __future__ import annotations

import json

from aios.api import Agent, Capabilities, Context, Manifest
from aios.hookspecs import hookimpl

__all__ = ["PlanAgent"]


class PlanAgent(Agent):
    manifest = Manifest(
        name="plan",
        description="Run a saved tool plan (JSON steps with ${id.path} references) in parallel, without the LLM.",
        # Any configured tool; started by the user it holds at most what [access.user] grants.
        capabilities=Capabilities(tools=("*",), models=()),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        try:
            plan = json.loads(goal)
        except ValueError as exc:
            await ctx.write(f"the goal must be a plan as JSON: {exc}\n")
            return None
        payload = {"steps": plan.get("steps", [])}
        if plan.get("timeout_s") is not None:
            payload["timeout_s"] = plan["timeout_s"]
        result = await ctx.call("tool.plan", **payload)
        return json.dumps(result, default=str)


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [PlanAgent]
