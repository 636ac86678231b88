"""The built-in ``supervisor`` agent: splits a goal, runs each part as a child agent, merges the answers.

The model splits the goal into at most three parts, each for one of the agents the supervisor may start
(``ctx.llm.json`` under a schema whose ``agent`` field is an enum of them); a goal that does not split (or a
backend without grammars) is one part for ``chat``. Each child is spawned with capabilities narrowed to what
its part needs (never more than the supervisor's own), all run at once, and the supervisor waits for them and
merges their results: the answers in order, then one line from the model that joins them.
"""

from __future__ import annotations

import re
from typing import Any

import anyio

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from plugins._args import known_paths, numbers_in
from plugins.planner import plan_parts

__all__ = ["SupervisorAgent", "agent_for", "split_schema", "structural_split"]

#: The agents a supervisor may start, and what each child is narrowed to.
CHILDREN: dict[str, dict[str, Any]] = {
    "chat": {"tools": [], "files_read": [], "files_write": [], "max_children": 0},
    "summarizer": {"tools": [], "files_write": [], "max_children": 0},
    "planner": {"files_read": [], "files_write": [], "max_children": 0},
    "worker": {"files_read": [], "files_write": [], "max_children": 0},
}
MAX_PARTS = 3

SPLIT_SYSTEM = (
    "Split the user's goal into independent parts, at most three. For each part pick the agent that does it: "
    "chat (answer or write text), summarizer (summarise files), planner (use tools: time, files, git, web). "
    "A goal that does not split is one part."
)
_WRITING = re.compile(r"\b(?:write|draft|compose|poem|story|essay|email|letter|explain|describe)\b", re.I)
_SUMMARY = re.compile(r"\bsummar", re.I)


def agent_for(part: str) -> str:
    """The child agent for a part, by its words: the summarizer for a summary, chat for writing or explaining,
    the worker (tools, step by step) for anything to look up, read or compute."""
    if _SUMMARY.search(part):
        return "summarizer"
    if _WRITING.search(part) and not known_paths(part) and not numbers_in(part):
        return "chat"
    return "worker"


def structural_split(goal: str) -> list[dict[str, str]]:
    """The goal's parts as its structure gives them ("X, and Y"; a part that builds on the one before stays with
    it), each with the agent for it; one part when the structure does not split the goal."""
    groups = plan_parts(goal)[:MAX_PARTS]
    return [{"agent": agent_for(" ".join(g)), "goal": ", then ".join(g)} for g in groups] if len(groups) > 1 else []


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in _COMMON}


_COMMON = frozenset("the and for with from that this what about tell write give make please".split())


def split_schema(agents: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "parts": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_PARTS,
                "items": {
                    "type": "object",
                    "properties": {"agent": {"enum": agents}, "goal": {"type": "string", "maxLength": 200}},
                    "required": ["agent", "goal"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["parts"],
        "additionalProperties": False,
    }


class SupervisorAgent(Agent):
    manifest = Manifest(
        name="supervisor",
        description="Split a goal into parts, run each as a child agent with narrowed capabilities, merge answers.",
        capabilities=Capabilities(tools=("*",), files_read=("~",), max_children=MAX_PARTS, llm_token_budget=200_000),
    )

    async def split(self, ctx: Context, goal: str) -> list[dict[str, str]]:
        """The goal's parts: read off its structure where it splits, else the model's split (under a grammar)."""
        parts = structural_split(goal)
        if parts:
            return parts
        try:
            doc = await ctx.llm.json(goal, split_schema(list(CHILDREN)), system=SPLIT_SYSTEM, max_tokens=200)
            words = _words(goal)
            # A part must be about the goal: one sharing no word with it is the model's noise, not a split.
            parts = [p for p in doc.get("parts", []) if _words(p.get("goal", "")) & words][:MAX_PARTS]
        except AiosError as exc:  # no grammar on this backend, or an answer that does not parse
            ctx.log.info("could not split %r: %s", goal, exc)
            parts = []
        return parts or [{"agent": "chat", "goal": goal}]

    async def run(self, ctx: Context, goal: str) -> str | None:
        if not goal.strip():
            await ctx.write("Give the supervisor a goal to split.\n")
            return None
        parts = await self.split(ctx, goal)
        results: list[dict[str, Any]] = [{} for _ in parts]

        async def one(i: int, part: dict[str, str]) -> None:
            try:
                pid = await ctx.spawn(part["agent"], part["goal"], caps=CHILDREN.get(part["agent"], {}))
                results[i] = await ctx.wait(pid)
            except AiosError as exc:
                results[i] = {"state": "failed", "error": exc.one_line()}

        async with anyio.create_task_group() as tg:
            for i, part in enumerate(parts):
                await ctx.write(f"part {i + 1}: {part['agent']} <- {part['goal']}\n")
                tg.start_soon(one, i, part)
        lines = []
        for i, (part, done) in enumerate(zip(parts, results, strict=True), 1):
            answer = done.get("result") if done.get("state") == "exited" else f"(failed: {done.get('error')})"
            lines.append(f"{i}. {part['goal']}: {answer}")
        merged = "\n".join(lines)
        await ctx.write(merged + "\n")
        await ctx.end_turn()
        return merged


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [SupervisorAgent]
