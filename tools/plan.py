"""Typed tool plans: ``{"steps": [{id, tool, args, deps}], "servers"?, "timeout_s"?}``.

``args`` values may reference earlier results: a whole string ``"${id}"`` or ``"${id.path.0}"`` is replaced by
that value (typed: an object stays an object); a reference inside a longer string is replaced by its text.
A step depends on the steps it names in ``deps`` and on every step it references. ``analyse`` finds what
would stop a step from running (unknown or duplicate ids, dangling references, cycles) and names it, so the
executor fails exactly those steps (and what depends on them) and runs the rest.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aios.errors import UsageError

__all__ = ["REF_RE", "Plan", "PlanAnalysis", "Step", "analyse", "find_refs", "load_plan", "resolve_args"]

REF_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_-]*)((?:\.[A-Za-z0-9_-]+)*)\}")
_ID = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID)
    tool: str = Field(min_length=3, max_length=200)
    args: dict[str, Any] = Field(default_factory=dict)
    deps: list[str] = Field(default_factory=list, max_length=256)
    #: Seconds without a result or progress before the call is cancelled (default: the plan's, then the server's).
    timeout_s: float | None = Field(None, gt=0, le=86400)
    #: Extra attempts after a failure; default 1 for read-only/idempotent tools, 0 otherwise. Timeouts are
    #: retried only when this is set explicitly.
    retries: int | None = Field(None, ge=0, le=5)
    #: ``skip``: fail this step when a dependency failed. ``run``: run anyway, references to the failed step
    #: resolve to ``{"error": text, "error_kind": kind}``.
    on_dep_error: Literal["skip", "run"] = "skip"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(min_length=1, max_length=1000)
    servers: dict[str, Any] | None = None
    timeout_s: float | None = Field(None, gt=0, le=86400)
    goal: str | None = None


def load_plan(data: Any, *, source: str = "plan") -> Plan:
    """Validate a plan document; one clear line on the first problem."""
    if isinstance(data, list):
        data = {"steps": data}
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "plan"
        raise UsageError(f"{source}: {where}: {first['msg']}") from None


def find_refs(value: Any) -> set[str]:
    """Step ids referenced anywhere in ``value``."""
    if isinstance(value, str):
        return {m.group(1) for m in REF_RE.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(find_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(find_refs(v) for v in value)) if value else set()
    return set()


class PlanAnalysis(BaseModel):
    order: list[str]
    deps: dict[str, list[str]]
    #: Steps that cannot run, with the reason.
    broken: dict[str, str]


def analyse(plan: Plan) -> PlanAnalysis:
    ids = [s.id for s in plan.steps]
    broken: dict[str, str] = {}
    seen: set[str] = set()
    for step_id in ids:
        if step_id in seen:
            broken[step_id] = f"duplicate step id {step_id!r}"
        seen.add(step_id)
    deps: dict[str, list[str]] = {}
    for step in plan.steps:
        wanted = list(dict.fromkeys([*step.deps, *sorted(find_refs(step.args))]))
        missing = [d for d in wanted if d not in seen]
        if step.id in wanted:
            broken.setdefault(step.id, f"step {step.id!r} depends on itself")
        if missing:
            kind = "references" if any(m in find_refs(step.args) for m in missing) else "depends on"
            broken.setdefault(step.id, f"step {step.id!r} {kind} unknown step(s) {', '.join(missing)}")
        deps[step.id] = [d for d in wanted if d in seen and d != step.id]
    # Cycles: Kahn's algorithm; whatever is left is on or behind a cycle.
    indegree = {i: len(deps[i]) for i in deps}
    users: dict[str, list[str]] = {i: [] for i in deps}
    for i, ds in deps.items():
        for d in ds:
            users[d].append(i)
    ready = [i for i in deps if indegree[i] == 0]
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for user in users[node]:
            indegree[user] -= 1
            if indegree[user] == 0:
                ready.append(user)
    left = [i for i in deps if i not in order]
    if left:
        cycle = _a_cycle(left, deps)
        for i in left:
            on_cycle = i in cycle
            broken.setdefault(
                i,
                f"dependency cycle {' -> '.join([*cycle, cycle[0]])}"
                if on_cycle
                else f"step {i!r} waits on the cycle {' -> '.join([*cycle, cycle[0]])}",
            )
        order.extend(left)
    return PlanAnalysis(order=order, deps=deps, broken=broken)


def _a_cycle(nodes: list[str], deps: dict[str, list[str]]) -> list[str]:
    allowed = set(nodes)
    start = nodes[0]
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = next(d for d in deps[node] if d in allowed)
    return path[path.index(node) :]


class RefError(Exception):
    pass


def _walk(value: Any, path: list[str], ref: str) -> Any:
    for part in path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, str):
            try:
                value = _walk(json.loads(value), [part], ref)
            except (ValueError, RefError):
                raise RefError(f"${{{ref}}}: no {part!r} in the text result") from None
        else:
            raise RefError(f"${{{ref}}}: no {part!r} in {type(value).__name__} result")
    return value


def resolve_args(value: Any, results: dict[str, Any]) -> Any:
    """Substitute ``${id...}`` references with values from ``results`` (id -> value). Raises RefError."""
    if isinstance(value, str):
        whole = REF_RE.fullmatch(value)
        if whole:
            ref = whole.group(1) + whole.group(2)
            return _walk(results[whole.group(1)], [p for p in whole.group(2).split(".") if p], ref)

        def text(match: re.Match[str]) -> str:
            got = _walk(results[match.group(1)], [p for p in match.group(2).split(".") if p], match.group(0)[2:-1])
            return got if isinstance(got, str) else json.dumps(got)

        return REF_RE.sub(text, value)
    if isinstance(value, dict):
        return {k: resolve_args(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_args(v, results) for v in value]
    return value
