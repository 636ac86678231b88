"""The built-in ``worker`` agent: a step-by-step tool loop, for tasks where one result decides the next call.

Each step narrows the catalog to a few read-only candidates for the goal and what was learnt so far
(``ctx.tools.search``), has the model pick one (or ``done``) under an enum grammar (``ctx.llm.choose``), fills its
arguments under a grammar built from that tool's schema (``ctx.llm.json``), and calls it through the kernel
(checked, accounted, audited). A failed call is shown to the model at the next step, which may retry it
differently; after ``max_steps`` calls, or ``done``, the model answers from the results in a few words.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from plugins._args import ground_args, is_path_key, known_paths, numbers_in
from plugins.answers import answer_form, answer_schema, format_answer
from plugins.goals import request_named_paths

__all__ = ["WorkerAgent", "args_schema"]

_SIMPLE = ("string", "number", "integer", "boolean")
SYSTEM = "You do a task by calling tools one at a time. Use the results so far. Be brief."


def args_schema(
    input_schema: dict[str, Any], paths: list[str] | None = None, numbers: list[float] | None = None
) -> dict[str, Any]:
    """A closed object of a tool's required arguments with simple types (what a small model can fill); a path-like
    string argument is one of ``paths`` (those the goal and the results so far name) and a number one of
    ``numbers`` (likewise), when there are any: a small model copies a value far better than it writes one."""
    given = input_schema.get("properties") or {}
    props: dict[str, Any] = {}
    for name in input_schema.get("required") or []:
        spec = given.get(name) or {}
        kind = spec.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if paths and kind == "string" and "enum" not in spec and is_path_key(name):
            props[name] = {"enum": list(paths)}
        elif numbers and kind in ("number", "integer") and "enum" not in spec:
            props[name] = {"enum": [n for n in numbers if kind == "number" or float(n).is_integer()] or numbers}
        elif "enum" in spec:
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


def _required(tool: dict[str, Any]) -> list[str]:
    return list((tool.get("input_schema") or {}).get("required") or [])


def fitting(goal: str, tools: dict[str, dict[str, Any]], paths: list[str]) -> tuple[list[str], bool]:
    """The candidates that fit, in rank order: first a tool the goal names (``get-sum``, or a word sharing its
    stem: "multiplied" for ``multiply``) or one made for the kind of file the goal names (``read_docx`` for a
    .docx); then, with paths in the goal, tools that take a path, and without, tools that need none (their path
    could only be made up). The kernel's own task-tree and process tools only when the goal speaks of tasks.
    The flag: exactly one tool is named or made for the file, so no choice is left to make."""
    low = goal.lower()
    for path in paths:  # the words of the goal, not of the paths it names
        low = low.replace(path.lower(), " ")
    words = {w[:6] for w in re.findall(r"[a-z]{5,}", low)}
    kinds = {os.path.splitext(p)[1].lstrip(".").lower() for p in paths} - {""}
    internal = ("task.", "proc.")
    usable = {n: t for n, t in tools.items() if not n.startswith(internal) or "task" in low}

    def named(name: str) -> bool:
        short = name.split(".", 1)[-1].lower()
        stems = {w[:6] for w in re.findall(r"[a-z]{5,}", short)}
        return (len(short) > 3 and short in low) or bool(stems & words)

    def made_for(name: str) -> bool:
        text = f"{name} {usable[name].get('description', '')}".lower()
        return any(re.search(rf"\b{re.escape(k)}\b", text) for k in kinds)

    def wrong_kind(name: str) -> bool:  # made for another kind of file than any the goal names
        text = f"{name} {usable[name].get('description', '')}".lower()
        return (
            bool(kinds)
            and not made_for(name)
            and bool(re.search(r"\.(docx|csv|pdf|xlsx|json|md|txt)\b|\b(docx|csv|pdf|xlsx)\b", text))
        )

    def takes_path(name: str) -> bool:
        return any(is_path_key(a) for a in _required(usable[name]))

    ranked = [n for n in usable if not wrong_kind(n)]
    first = [n for n in ranked if made_for(n)] + [n for n in ranked if named(n)]
    fit = [n for n in ranked if takes_path(n) == bool(paths)]
    return list(dict.fromkeys(first + fit + ranked)), len(set(first)) == 1


def _numbers(*texts: str) -> list[float]:
    return list(dict.fromkeys(float(n) for text in texts for n in numbers_in(text)))[:16]


def checked_answer(goal: str, answer: str, steps: list[dict[str, Any]]) -> str:
    """The answer, checked against the results: a number no result contains is the model's
    guess, so the last number a successful call returned is the answer instead; an empty answer is the last
    successful result (shortened)."""
    good = [s["text"].strip() for s in steps if not s["is_error"] and s["text"].strip()]
    if not good:
        return answer
    if answer_form(goal) == "number":
        # The tools compute, the model does not: the last result that is one number is the answer.
        last = numbers_in(good[-1])
        if len(last) == 1:
            return format_answer(float(last[0]))
        seen = {float(n) for text in good for n in numbers_in(text)}
        try:
            grounded = float(answer) in seen
        except ValueError:
            grounded = False
        if not grounded:
            found = next((numbers_in(t) for t in reversed(good) if numbers_in(t)), [])
            if len(found) == 1:
                return format_answer(float(found[0]))
    if not answer.strip():
        return " ".join(good[-1].split())[:200]
    return answer


class WorkerAgent(Agent):
    manifest = Manifest(
        name="worker",
        description="Call tools one at a time, each chosen from what the last one returned, then answer.",
        capabilities=Capabilities(tools=("*",), llm_token_budget=100_000),
    )
    max_steps = 4
    candidates = 4

    def _context(self, goal: str, steps: list[dict[str, Any]], width: int = 200) -> str:
        done = "\n".join(
            f"{i}. {s['tool']} {json.dumps(s['args'])} -> {'ERROR ' if s['is_error'] else ''}{s['text'][:width]}"
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
                paths = known_paths(goal, *(s["text"] for s in steps if not s["is_error"]))[:12]
                names, obvious = fitting(goal, tools, paths)
                names = names[: self.candidates]
                if not names:
                    break
                context = self._context(goal, steps)
                listing = "\n".join(f"- {n}: {tools[n].get('description', '')[:120]}" for n in names)
                options = names + (["done"] if steps else [])
                choice = (
                    names[0]
                    if obvious and not steps
                    else await ctx.llm.choose(
                        f"{context}\n\nTools:\n{listing}\n\nWhich tool is next" + (" (or done)?" if steps else "?"),
                        options,
                        system=SYSTEM,
                    )
                )
                if choice == "done":
                    break
                numbers = _numbers(goal, *(s["text"][:400] for s in steps if not s["is_error"]))
                args = await ctx.llm.json(
                    f"{context}\n\nArguments for {choice}: {tools[choice].get('description', '')[:160]}",
                    args_schema(tools[choice].get("input_schema") or {}, paths, numbers),
                    system=SYSTEM,
                    max_tokens=160,
                )
                args = ground_args(args, paths) if isinstance(args, dict) else {}
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
                self._context(goal, steps, 600) + "\n\nAnswer the task from these results.",
                answer_object(goal),
                system=SYSTEM,
            )
        except AiosError as exc:  # a backend without grammars, a denied tool, a budget spent
            await ctx.write(f"I could not finish: {exc.one_line()}\n")
            return None
        answer = format_answer(doc.get("answer", "")) if isinstance(doc, dict) else ""
        answer = checked_answer(goal, answer, steps)
        await ctx.write(answer + "\n")
        await ctx.end_turn()
        return answer


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [WorkerAgent]
