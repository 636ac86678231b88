"""Planner logic around the LLM (the grammar it builds, validation, the one bounded replan) with a scripted
context; the real model writes plans in tests/integration/test_planner_model.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import jsonschema
import pytest

from kernel.grammar import schema_to_gbnf
from tools.planner import Planner, plan_schema

pytestmark = pytest.mark.anyio

CANDIDATES = [
    {
        "name": "clock.get_current_time",
        "signature": "clock.get_current_time(timezone: string)",
        "side_effect": "read_only",
        "description": "Current time in a timezone",
        "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
    {
        "name": "git.git_log",
        "signature": "git.git_log(repo_path: string, max_count?: integer)",
        "side_effect": "read_only",
        "description": "Commit log",
        "input_schema": {
            "type": "object",
            "properties": {"repo_path": {"type": "string"}, "max_count": {"type": "integer"}},
            "required": ["repo_path"],
        },
    },
    {
        "name": "git.git_reset",
        "signature": "git.git_reset(repo_path: string)",
        "side_effect": "destructive",
        "description": "Unstage everything",
        "input_schema": {"type": "object", "properties": {}},
    },
]


class ScriptedCtx:
    """Replies from a script; records the syscalls and the schemas the planner asked the model for."""

    def __init__(self, replies: list[str], results: list[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.results = list(results)
        self.schemas: list[dict[str, Any]] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.llm = self

    def chat(self, messages: Any, *, json_schema: dict[str, Any] | None = None, **_: Any) -> AsyncIterator[str]:
        self.schemas.append(json_schema or {})
        reply = self.replies.pop(0)

        async def gen() -> AsyncIterator[str]:
            yield reply

        return gen()

    async def call(self, syscall: str, **payload: Any) -> Any:
        self.calls.append((syscall, payload))
        if syscall == "tool.search":
            return {"tools": CANDIDATES}
        if syscall == "tool.plan":
            return self.results.pop(0)
        raise AssertionError(syscall)


def test_plan_schema_admits_only_candidates_and_compiles_to_a_grammar() -> None:
    schema = plan_schema(CANDIDATES[:2])
    good = {"steps": [{"id": "s1", "tool": "git.git_log", "args": {"repo_path": "/r"}, "deps": []}]}
    jsonschema.validate(good, schema)
    for bad in (
        {"steps": [{"id": "s1", "tool": "git.git_reset", "args": {"repo_path": "/r"}, "deps": []}]},
        {"steps": [{"id": "s1", "tool": "git.git_log", "args": {"repo_path": 3}, "deps": []}]},
        {"steps": [{"id": "s1", "tool": "git.git_log", "args": {}, "deps": []}]},
        {"steps": []},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert "git.git_log" in schema_to_gbnf(schema)


async def test_read_only_candidates_plan_and_answer() -> None:
    plan = {"steps": [{"id": "s1", "tool": "clock.get_current_time", "args": {"timezone": "Asia/Tokyo"}, "deps": []}]}
    run = {"results": {"s1": {"text": "14:00", "is_error": False, "elapsed_s": 0.01}}}
    ctx = ScriptedCtx([json.dumps(plan), json.dumps({"action": "answer", "answer": "It is 14:00."})], [run])
    with anyio.fail_after(5):
        out = await Planner(ctx).run("time in Tokyo?")  # type: ignore[arg-type]
    assert out["answer"] == "It is 14:00."
    assert out["attempts"][0]["candidates"] == ["clock.get_current_time", "git.git_log"]  # destructive one left out
    assert out["attempts"][0]["valid"]
    assert [c[0] for c in ctx.calls] == ["tool.search", "tool.plan"]
    # The joiner could not ask for a replan: nothing failed.
    assert ctx.schemas[1]["properties"]["action"] == {"const": "answer"}


async def test_failure_gets_one_replan_then_answers() -> None:
    plan = {"steps": [{"id": "s1", "tool": "git.git_log", "args": {"repo_path": "/nope"}, "deps": ["s1", "s9"]}]}
    failed = {"results": {"s1": {"text": "not a repo", "is_error": True, "elapsed_s": 0.0}}}
    ctx = ScriptedCtx(
        [
            json.dumps(plan),
            json.dumps({"action": "replan", "answer": ""}),
            json.dumps(plan),
            json.dumps({"action": "replan", "answer": "gave up"}),
        ],
        [failed, failed],
    )
    with anyio.fail_after(5):
        out = await Planner(ctx).run("log of /nope")  # type: ignore[arg-type]
    assert len(out["attempts"]) == 2  # bounded: the second join may only answer
    assert out["attempts"][0]["steps"][0]["deps"] == []  # self and unknown deps dropped
    assert ctx.schemas[3]["properties"]["action"] == {"const": "answer"}
    assert out["answer"] == "gave up"


async def test_invalid_plans_are_reported_not_run() -> None:
    dup = {
        "steps": [
            {"id": "s1", "tool": "git.git_log", "args": {"repo_path": "/r"}, "deps": []},
            {"id": "s1", "tool": "clock.get_current_time", "args": {"timezone": 5}, "deps": []},
        ]
    }
    ctx = ScriptedCtx([json.dumps(dup), "not json"], [])
    planner = Planner(ctx)  # type: ignore[arg-type]
    with anyio.fail_after(5):
        attempt = await planner.write_plan("x", CANDIDATES[:2])
        assert [s["id"] for s in attempt.steps] == ["s1", "s2"]  # renumbered
        assert attempt.problems == ["step s2: 5 is not of type 'string'"] and not attempt.valid
        broken = await planner.write_plan("x", CANDIDATES[:2])
        assert broken.problems[0].startswith("the model's plan is not JSON")
        empty = await planner.write_plan("x", [])
        assert empty.problems == ["no tool matches the task (or none is granted)"]


async def test_repeated_steps_are_collapsed() -> None:
    step = {"tool": "clock.get_current_time", "args": {"timezone": "UTC"}}
    looped = {
        "steps": [
            {"id": "s1", **step, "deps": []},
            {"id": "s2", **step, "deps": []},
            {"id": "s3", "tool": "git.git_log", "args": {"repo_path": "/r"}, "deps": ["s2"]},
        ]
    }
    ctx = ScriptedCtx([json.dumps(looped)], [])
    with anyio.fail_after(5):
        attempt = await Planner(ctx).write_plan("x", CANDIDATES[:2])  # type: ignore[arg-type]
    assert [s["id"] for s in attempt.steps] == ["s1", "s3"] and attempt.steps[1]["deps"] == ["s1"]
