"""Typed tool plans: ``{"steps": [{id, tool, args, deps}], "servers"?, "timeout_s"?}``.

``args`` values may reference earlier results: a whole string ``"${id}"`` or ``"${id.path.0}"`` is replaced by
that value (typed: an object stays an object, unless the tool's input schema wants a string there: then it is
the value's text); a reference inside a longer string is replaced by its text (a whole result's own text, else
the value as compact JSON).
A step depends on the steps it names in ``deps`` and on every step it references. ``analyse`` finds what
would stop a step from running (unknown or duplicate ids, dangling references, cycles) and names it, so the
executor fails exactly those steps (and what depends on them) and runs the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aios.errors import UsageError, first_problem

__all__ = ["REF_RE", "Plan", "PlanAnalysis", "Step", "analyse", "find_refs", "load_plan", "ref_text", "resolve_args"]

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
        raise UsageError(f"{source}: {first_problem(exc, 'plan')}") from None


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


def ref_text(value: Any) -> str:
    """The text a referenced value stands for: a string as-is, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


_MAX_SCHEMA_DEPTH = 32


def _deref(schema: Any, root: Any) -> Any:
    """Follow local ``$ref`` s (``#/$defs/X``) and single-branch ``allOf`` wrappers (as pydantic writes them)."""
    for _ in range(_MAX_SCHEMA_DEPTH):
        if not isinstance(schema, dict):
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node: Any = root
            for part in ref[2:].split("/"):
                node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
            schema = node
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "type" not in schema:
            schema = all_of[0]
            continue
        return schema
    return None


def _json_types(schema: Any, root: Any, depth: int = 0) -> set[str] | None:
    """The JSON types ``schema`` accepts, or None when it does not say (any value)."""
    schema = _deref(schema, root)
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list) and branches:
        found: set[str] = set()
        for branch in branches:
            sub = _json_types(branch, root, depth + 1)
            if sub is None:
                return None
            found |= sub
        return found
    values = schema.get("enum") if "enum" in schema else ([schema["const"]] if "const" in schema else None)
    if isinstance(values, list) and values:
        return {_json_type(v) for v in values}
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _wants_text(schema: Any, root: Any, value: Any) -> bool:
    """Whether ``value`` must become text to fit ``schema``: it takes strings but not ``value``'s own type."""
    types = _json_types(schema, root)
    if types is None or "string" not in types:
        return False
    kind = _json_type(value)
    if kind == "integer" and "number" in types:
        return False
    return kind not in types


def _child(schema: Any, root: Any, key: str | int) -> Any:
    schema = _deref(schema, root)
    if not isinstance(schema, dict):
        return None
    if isinstance(key, str):
        props = schema.get("properties")
        if isinstance(props, dict) and key in props:
            return props[key]
        extra = schema.get("additionalProperties")
        return extra if isinstance(extra, dict) else None
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and key < len(prefix):
        return prefix[key]
    items = schema.get("items")
    return items if isinstance(items, dict) else None


def resolve_args(
    value: Any,
    results: dict[str, Any],
    *,
    texts: Mapping[str, str] | None = None,
    schema: dict[str, Any] | None = None,
) -> Any:
    """Substitute ``${id...}`` references with values from ``results`` (id -> value). Raises RefError.

    ``texts`` (id -> the result's own text) is what a reference to a whole result reads as text. ``schema`` is
    the tool's input schema: where a whole-string reference lands on an argument that takes a string and the
    referenced value is not one (a structured result, a number), the value's text is passed instead; where the
    schema takes objects, arrays or numbers (or says nothing) the value keeps its type.
    """
    return _resolve(value, results, texts or {}, schema, schema)


def _resolve(value: Any, results: dict[str, Any], texts: Mapping[str, str], schema: Any, root: Any) -> Any:
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> tuple[Any, str | None]:
            step_id, path = match.group(1), [p for p in match.group(2).split(".") if p]
            got = _walk(results[step_id], path, match.group(0)[2:-1])
            return got, (texts.get(step_id) if not path else None)

        def text(match: re.Match[str]) -> str:
            got, own_text = lookup(match)
            return own_text if own_text is not None else ref_text(got)

        whole = REF_RE.fullmatch(value)
        if whole:
            got, own_text = lookup(whole)
            if schema is not None and _wants_text(schema, root, got):
                return own_text if own_text is not None else ref_text(got)
            return got
        return REF_RE.sub(text, value)
    if isinstance(value, dict):
        return {k: _resolve(v, results, texts, _child(schema, root, k), root) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, results, texts, _child(schema, root, i), root) for i, v in enumerate(value)]
    return value
