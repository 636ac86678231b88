"""The LLM planner: narrow the catalog to a few candidates, have the model write a typed plan under a grammar
that only admits those tools and their argument shapes, run it through the executor, then join: answer, or
(once) replan with the failures shown.

Small models pick tools poorly when shown many, and free-form JSON fails; so candidates come from
``tool.search`` (keyword + embeddings), and the plan's JSON schema is an ``anyOf`` with one branch per
candidate, whose ``tool`` is a constant and whose ``args`` carry only that tool's required arguments with their
types. Everything goes through syscalls (``llm.chat`` with ``json_schema``, ``tool.search``, ``tool.plan``),
so access control sees each step.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from aios.api import ChatMessage, Context

__all__ = ["PlanAttempt", "Planner", "plan_schema"]

log = logging.getLogger(__name__)

MAX_STEPS = 3
STEP_IDS = [f"s{i + 1}" for i in range(MAX_STEPS)]
_SIMPLE = ("string", "number", "integer", "boolean")

SYSTEM = (
    "You are the planner of an agent operating system. Given a task and a list of tools, write a JSON plan: "
    "a list of steps, each calling one tool with its arguments. Use as few steps as possible. "
    "A later step may use an earlier result by writing ${s1} in an argument and listing s1 in deps."
)


def _arg_schema(input_schema: dict[str, Any]) -> dict[str, Any]:
    """The required arguments of a tool with simple types, as a closed object (what the grammar admits)."""
    props_in = input_schema.get("properties") or {}
    props: dict[str, Any] = {}
    for name in input_schema.get("required") or []:
        spec = props_in.get(name) or {}
        kind = spec.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if "enum" in spec:
            props[name] = {"enum": spec["enum"]}
        elif kind in _SIMPLE:
            props[name] = {"type": kind, **({"maxLength": 80} if kind == "string" else {})}
        elif kind == "array":
            item = (spec.get("items") or {}).get("type", "string")
            props[name] = {
                "type": "array",
                "items": {"type": item if item in _SIMPLE else "string"},
                "minItems": min(int(spec.get("minItems", 0)), 4),
                "maxItems": 4,
            }
        else:
            props[name] = {"type": "string", "maxLength": 80}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def plan_schema(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema admitting only plans over ``candidates`` (catalog entries with ``input_schema``)."""
    branches = [
        {
            "type": "object",
            "properties": {
                "id": {"enum": STEP_IDS},
                "tool": {"const": c["name"]},
                "args": _arg_schema(c.get("input_schema") or {}),
                "deps": {"type": "array", "items": {"enum": STEP_IDS}, "maxItems": MAX_STEPS - 1},
            },
            "required": ["id", "tool", "args", "deps"],
            "additionalProperties": False,
        }
        for c in candidates
    ]
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": {"anyOf": branches}, "minItems": 1, "maxItems": MAX_STEPS}},
        "required": ["steps"],
        "additionalProperties": False,
    }


JOIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"action": {"enum": ["answer", "replan"]}, "answer": {"type": "string", "maxLength": 300}},
    "required": ["action", "answer"],
    "additionalProperties": False,
}


@dataclass
class PlanAttempt:
    """One plan the model wrote: its steps (if it parsed), whether it is valid, and what ran."""

    candidates: list[str]
    raw: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run: dict[str, Any] | None = None

    @property
    def valid(self) -> bool:
        return bool(self.steps) and not self.problems

    @property
    def tools(self) -> list[str]:
        return [s.get("tool", "") for s in self.steps]


def _dedupe(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop steps that repeat an earlier call exactly (small models loop), pointing deps at the first."""
    kept: list[dict[str, Any]] = []
    alias: dict[str, str] = {}
    seen: dict[str, str] = {}
    for step in steps:
        key = json.dumps([step.get("tool"), step.get("args")], sort_keys=True)
        if key in seen:
            alias[str(step.get("id"))] = seen[key]
            continue
        seen[key] = str(step.get("id"))
        kept.append(step)
    for step in kept:
        step["deps"] = list(dict.fromkeys(alias.get(d, d) for d in step.get("deps", [])))
    return kept


def _tool_lines(candidates: list[dict[str, Any]]) -> str:
    return "\n".join(f"- {c['signature']}: {c['description'][:160]}" for c in candidates)


class Planner:
    def __init__(
        self,
        ctx: Context,
        *,
        candidates: int = 3,
        max_tokens: int = 320,
        side_effects: tuple[str, ...] = ("read_only",),
    ) -> None:
        self.ctx = ctx
        self.n_candidates = candidates
        self.max_tokens = max_tokens
        #: Which tools the model may propose: read-only by default, since a small model's plan runs unreviewed.
        self.side_effects = side_effects

    async def _chat(self, messages: list[ChatMessage], schema: dict[str, Any], max_tokens: int) -> str:
        pieces = [
            p async for p in self.ctx.llm.chat(messages, json_schema=schema, max_tokens=max_tokens, temperature=0.0)
        ]
        return "".join(pieces)

    async def candidates(self, goal: str) -> list[dict[str, Any]]:
        found = await self.ctx.call("tool.search", query=goal, limit=min(50, self.n_candidates * 4), schemas=True)
        return [t for t in found["tools"] if t["side_effect"] in self.side_effects][: self.n_candidates]

    async def write_plan(self, goal: str, candidates: list[dict[str, Any]], feedback: str = "") -> PlanAttempt:
        attempt = PlanAttempt(candidates=[c["name"] for c in candidates])
        if not candidates:
            attempt.problems.append("no tool matches the task (or none is granted)")
            return attempt
        user = f"Task: {goal}\n\nTools:\n{_tool_lines(candidates)}"
        if feedback:
            user += f"\n\nThe previous plan failed:\n{feedback}\nWrite a corrected plan."
        messages: list[ChatMessage] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        attempt.raw = await self._chat(messages, plan_schema(candidates), self.max_tokens)
        try:
            doc = json.loads(attempt.raw, strict=False)  # a raw tab inside a string is still a usable plan
        except ValueError as exc:
            attempt.problems.append(f"the model's plan is not JSON: {exc}")
            return attempt
        attempt.steps = _dedupe(list(doc.get("steps") or []))
        by_name = {c["name"]: c for c in candidates}
        ids = [s.get("id") for s in attempt.steps]
        if len(set(ids)) != len(ids):
            # Renumber rather than reject: the grammar cannot express "distinct ids".
            mapping: dict[str, str] = {}
            for i, step in enumerate(attempt.steps):
                mapping.setdefault(step["id"], STEP_IDS[i])
                step["id"] = STEP_IDS[i]
        for step in attempt.steps:
            step["deps"] = [d for d in step.get("deps", []) if d in ids and d != step["id"]]
            entry = by_name.get(step.get("tool", ""))
            if entry is None:
                attempt.problems.append(f"step {step.get('id')}: tool {step.get('tool')!r} is not a candidate")
                continue
            try:
                jsonschema.validate(step.get("args", {}), entry.get("input_schema") or {"type": "object"})
            except jsonschema.ValidationError as exc:
                attempt.problems.append(f"step {step['id']}: {exc.message}")
        return attempt

    async def execute(self, attempt: PlanAttempt, timeout_s: float | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"steps": attempt.steps}
        if timeout_s is not None:
            payload["timeout_s"] = timeout_s
        attempt.run = await self.ctx.call("tool.plan", **payload)
        return attempt.run

    async def join(self, goal: str, attempt: PlanAttempt, can_replan: bool) -> tuple[str, str]:
        """(action, answer): the model answers from the results, or asks for the one replan it may have."""
        results = (attempt.run or {}).get("results", {})
        lines = [
            f"{i} {attempt.steps[n]['tool'] if n < len(attempt.steps) else ''}: "
            f"{'ERROR ' if r['is_error'] else ''}{r['text'][:300]}"
            for n, (i, r) in enumerate(results.items())
        ]
        failed = any(r["is_error"] for r in results.values())
        user = f"Task: {goal}\n\nTool results:\n" + "\n".join(lines) + "\n\nAnswer the task from these results."
        if failed and can_replan:
            user += " If a failed step makes that impossible, choose replan."
        schema = (
            JOIN_SCHEMA
            if failed and can_replan
            else {
                **JOIN_SCHEMA,
                "properties": {"action": {"const": "answer"}, "answer": JOIN_SCHEMA["properties"]["answer"]},
            }
        )
        raw = await self._chat(
            [{"role": "system", "content": "You answer briefly from tool results."}, {"role": "user", "content": user}],
            schema,
            160,
        )
        try:
            doc = json.loads(raw)
        except ValueError:
            return "answer", raw.strip()
        return str(doc.get("action", "answer")), str(doc.get("answer", "")).strip()

    async def run(self, goal: str, *, timeout_s: float | None = 60.0) -> dict[str, Any]:
        """Plan, execute, join; at most one replan. Returns the answer with every attempt."""
        candidates = await self.candidates(goal)
        attempts: list[PlanAttempt] = []
        feedback = ""
        answer = ""
        for round_no in range(2):
            attempt = await self.write_plan(goal, candidates, feedback)
            attempts.append(attempt)
            if not attempt.steps:
                answer = "I could not make a plan: " + "; ".join(attempt.problems)
                break
            await self.execute(attempt, timeout_s)
            action, answer = await self.join(goal, attempt, can_replan=round_no == 0)
            if action != "replan":
                break
            failures = [
                f"{i}: {r['text'][:200]}" for i, r in (attempt.run or {}).get("results", {}).items() if r["is_error"]
            ]
            feedback = "\n".join(failures + attempt.problems)
        return {
            "answer": answer,
            "attempts": [
                {"candidates": a.candidates, "steps": a.steps, "valid": a.valid, "problems": a.problems, "run": a.run}
                for a in attempts
            ],
        }
