"""The built-in ``planner`` agent: turns a goal into a parallel plan of MCP tool calls, runs it, answers.

Everything goes through the public API: ``ctx.tools.propose`` (the kernel narrows the catalog to a few
candidate tools and has the model write the plan under a grammar built from their schemas), ``ctx.tools.plan``
(every ready step at once, each step checked by access control), then ``ctx.llm.json`` answers from the
results, or asks for the one replan it may have when a step failed.
"""

from __future__ import annotations

import json
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.hookspecs import hookimpl
from plugins._args import ground_args, known_paths
from plugins.answers import answer_schema, format_answer
from plugins.goals import request_named_paths
from plugins.worker import checked_answer

__all__ = ["PlannerAgent", "join_schema"]

JOIN_SYSTEM = "You answer briefly from tool results."


def join_schema(can_replan: bool, goal: str = "") -> dict[str, Any]:
    """The answer's JSON schema: ``replan`` is offered only while a replan is still allowed; the answer is in
    the form the goal asks for (a number, yes/no, a path, a short text)."""
    return {
        "type": "object",
        "properties": {
            "action": {"enum": ["answer", "replan"]} if can_replan else {"const": "answer"},
            "answer": answer_schema(goal),
        },
        "required": ["action", "answer"],
        "additionalProperties": False,
    }


class PlannerAgent(Agent):
    manifest = Manifest(
        name="planner",
        description="Plan and run read-only MCP tool calls in parallel for a goal, then answer from the results.",
        # Every configured tool may be proposed; the user's policy narrows this (ask/deny per tool).
        capabilities=Capabilities(tools=("*",)),
    )
    timeout_s = 60.0

    async def run(self, ctx: Context, goal: str) -> str | None:
        if not goal.strip():
            await ctx.write("Give the planner a goal, e.g. `aios run planner 'what time is it in Tokyo?'`\n")
            return None
        await request_named_paths(ctx, goal)  # the folder the task names: asked for, not just denied
        answer, feedback = "", ""
        for round_no in range(2):
            proposal = await ctx.tools.propose(goal, feedback=feedback)
            paths = known_paths(goal)  # path arguments resolved against the paths the goal names
            proposal["steps"] = [{**s, "args": ground_args(s.get("args") or {}, paths)} for s in proposal["steps"]]
            await self._show(ctx, round_no + 1, proposal)
            if not proposal["steps"]:
                answer = "I could not make a plan: " + "; ".join(proposal["problems"])
                break
            run = await ctx.tools.plan(proposal["steps"], timeout_s=self.timeout_s)
            results: dict[str, Any] = run.get("results") or {}
            for step_id, result in results.items():
                mark = "error" if result["is_error"] else "ok"
                text = " ".join(result["text"].split())[:200]
                await ctx.write(f"  [{step_id}] {mark} {result['elapsed_s']:.2f}s {text}\n")
            failed = [f"{i}: {r['text'][:200]}" for i, r in results.items() if r["is_error"]]
            action, answer = await self._join(ctx, goal, proposal["steps"], results, bool(failed) and round_no == 0)
            done = [{"text": r["text"], "is_error": r["is_error"]} for r in results.values()]
            answer = checked_answer(goal, answer, done)
            if action != "replan":
                break
            feedback = "\n".join(failed + proposal["problems"])
        await ctx.write(answer + "\n")
        await ctx.end_turn()
        return answer

    async def _show(self, ctx: Context, n: int, proposal: dict[str, Any]) -> None:
        await ctx.write(f"plan {n} (candidates: {', '.join(proposal['candidates']) or 'none'}):\n")
        for step in proposal["steps"]:
            await ctx.write(f"  {step['id']}: {step['tool']} {json.dumps(step.get('args', {}))}\n")
        for problem in proposal["problems"]:
            await ctx.write(f"  problem: {problem}\n")

    async def _join(
        self, ctx: Context, goal: str, steps: list[dict[str, Any]], results: dict[str, Any], can_replan: bool
    ) -> tuple[str, str]:
        """(action, answer): the model answers from the results, or asks for the one replan it may have."""
        tools = {s["id"]: s["tool"] for s in steps}
        lines = [
            f"{i} {tools.get(i, '')}: {'ERROR ' if r['is_error'] else ''}{r['text'][:300]}" for i, r in results.items()
        ]
        user = f"Task: {goal}\n\nTool results:\n" + "\n".join(lines) + "\n\nAnswer the task from these results."
        if can_replan:
            user += " If a failed step makes that impossible, choose replan."
        try:
            doc = await ctx.llm.json(
                [{"role": "system", "content": JOIN_SYSTEM}, {"role": "user", "content": user}],
                join_schema(can_replan, goal),
                max_tokens=160,
            )
        except Exception as exc:  # an answer that does not parse is still an answer to show
            ctx.log.info("join answer did not parse: %s", exc)
            return "answer", ""
        return str(doc.get("action", "answer")), format_answer(doc.get("answer", ""))


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [PlannerAgent]
