"""The built-in ``worker`` agent: a step-by-step tool loop, for tasks where one result decides the next call.

Each step narrows the catalog to a few read-only candidates for the goal and what was learnt so far
(``ctx.tools.search``), has the model pick one (or ``done``) under an enum grammar (``ctx.llm.choose``), fills its
arguments under a grammar built from that tool's schema (``ctx.llm.json``), and calls it through the kernel
(checked, accounted, audited). A failed call is shown to the model at the next step, which may retry it
differently; after ``max_steps`` calls, or ``done``, the model answers from the results in a few words.
"""

from __future__ import annotations

import json
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from plugins.answers import answer_schema, format_answer
from plugins.goals import request_named_paths

__all__ = ["WorkerAgent", "args_schema"]

_SIMPLE = ("string", "number", "integer", "boolean")
SYSTEM = "You do a task by calling tools one at a time. Use the results so far. Be brief."


def args_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """A closed object of a tool's required arguments with simple types (what a small model can fill)."""
    given = input_schema.get("properties") or {}
    props: dict[str, Any] = {}
    for name in input_schema.get("required") or []:
        spec = given.get(name) or {}
        kind = spec.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if "enum" in spec:
            props[name] = {"enum": spec["enum"]}
        elif kind in _SIMPLE:
            props[name] = {"type": kind, **({"maxLength": 120} if kind == "string" else {})}
        else:
            props[name] = {"type": "string", "maxLength": 120}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def answer_object(goal: str) -> dict[str, Any]:
    """The final answer's schema, in the form the goal asks for (a number, yes/no, a path, a short text)."""
    return {
        "type": "object",
        "properties": {"answer": answer_schema(goal)},
        "required": ["answer"],
        "additionalProperties": False,
    }


class WorkerAgent(Agent):
    manifest = Manifest(
        name="worker",
        description="Call tools one at a time, each chosen from what the last one returned, then answer.",
        capabilities=Capabilities(tools=("*",), llm_token_budget=100_000),
    )
    max_steps = 4
    candidates = 3

    def _context(self, goal: str, steps: list[dict[str, Any]]) -> str:
        done = "\n".join(
            f"{i}. {s['tool']} {json.dumps(s['args'])} -> {'ERROR ' if s['is_error'] else ''}{s['text'][:200]}"
            for i, s in enumerate(steps, 1)
        )
        return f"Task: {goal}" + (f"\n\nResults so far:\n{done}" if done else "")

    async def run(self, ctx: Context, goal: str) -> str | None:
        if not goal.strip():
            await ctx.write("Give the worker a task.\n")
            return None
        await request_named_paths(ctx, goal)  # the folder the task names: asked for, not just denied
        steps: list[dict[str, Any]] = []
        try:
            for _ in range(self.max_steps):
                query = goal if not steps else f"{goal} {steps[-1]['text'][:200]}"
                found = await ctx.tools.search(query, limit=self.candidates * 3)
                tools = {t["name"]: t for t in found if t.get("side_effect") == "read_only"}
                names = list(tools)[: self.candidates]
                if not names:
                    break
                context = self._context(goal, steps)
                listing = "\n".join(f"- {n}: {tools[n].get('description', '')[:120]}" for n in names)
                options = names + (["done"] if steps else [])
                choice = await ctx.llm.choose(
                    f"{context}\n\nTools:\n{listing}\n\nWhich tool is next" + (" (or done)?" if steps else "?"),
                    options,
                    system=SYSTEM,
                )
                if choice == "done":
                    break
                args = await ctx.llm.json(
                    f"{context}\n\nArguments for {choice}: {tools[choice].get('description', '')[:160]}",
                    args_schema(tools[choice].get("input_schema") or {}),
                    system=SYSTEM,
                    max_tokens=160,
                )
                args = args if isinstance(args, dict) else {}
                if any(s["tool"] == choice and s["args"] == args and not s["is_error"] for s in steps):
                    break  # the same call again would tell nothing new: small models loop, the answer is due
                result = await ctx.tools.call(choice, args)
                steps.append({"tool": choice, "args": args, "is_error": result["is_error"], "text": result["text"]})
                mark = "error" if result["is_error"] else "ok"
                await ctx.write(
                    f"[{len(steps)}] {choice} {json.dumps(args)} {mark}: {' '.join(result['text'].split())[:200]}\n"
                )
            if not steps:
                await ctx.write("No tool I may use fits this task.\n")
                return None
            doc = await ctx.llm.json(
                self._context(goal, steps) + "\n\nAnswer the task from these results.",
                answer_object(goal),
                system=SYSTEM,
            )
        except AiosError as exc:  # a backend without grammars, a denied tool, a budget spent
            await ctx.write(f"I could not finish: {exc.one_line()}\n")
            return None
        answer = format_answer(doc.get("answer", "")) if isinstance(doc, dict) else ""
        await ctx.write(answer + "\n")
        await ctx.end_turn()
        return answer


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [WorkerAgent]
