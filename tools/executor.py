"""The DAG executor: every step whose dependencies are done starts at once.

Each step is one tool call through a ``CallFn`` (the host's ``call`` for scripts, the ``tool.call`` syscall
for agents, so access control sees every call). Failures are values: a failed step's dependents are skipped
with a reason (or, with ``on_dep_error: run``, see the error), broken steps (cycles, dangling references)
fail alone, and nothing waits forever: every call carries a timeout. Read-only and idempotent tools are
retried; destructive calls to one server are serialised by the host. ``PlanRun.metrics`` has the makespan,
the critical path, the parallel width and per-step timing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from tools.catalog import ToolEntry
from tools.plan import Plan, RefError, analyse, resolve_args
from tools.results import ProgressFn, ToolResult

__all__ = ["CallFn", "Executor", "PlanRun", "StepRecord"]

log = logging.getLogger(__name__)

_NO_RETRY = {"invalid_args", "unknown_tool", "denied", "plan", "cancelled"}


class CallFn(Protocol):
    async def __call__(
        self, tool: str, arguments: dict[str, Any], /, *, timeout: float | None, progress: ProgressFn | None
    ) -> ToolResult: ...


EventFn = Callable[[str, str, dict[str, Any]], Awaitable[None] | None]


@dataclass
class StepRecord:
    id: str
    tool: str
    result: ToolResult | None = None
    start_s: float | None = None
    end_s: float | None = None
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        assert self.result is not None
        out = self.result.to_json()
        out["tool"] = self.tool
        if self.start_s is not None:
            out["start_s"] = round(self.start_s, 6)
            out["end_s"] = round(self.end_s or self.start_s, 6)
        if self.skipped:
            out["skipped"] = True
        return out


@dataclass
class PlanRun:
    steps: dict[str, StepRecord]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.result is not None and not r.result.is_error for r in self.steps.values())

    def to_json(self) -> dict[str, Any]:
        return {"results": {i: r.to_json() for i, r in self.steps.items()}, "metrics": self.metrics}


def _critical_path(
    records: dict[str, StepRecord], deps: dict[str, list[str]], order: list[str]
) -> tuple[list[str], float]:
    """The chain of dependent steps with the largest total duration (what bounds the makespan)."""
    best: dict[str, tuple[float, list[str]]] = {}
    for node in order:
        rec = records[node]
        own = (rec.end_s - rec.start_s) if rec.start_s is not None and rec.end_s is not None else 0.0
        prior = max((best[d] for d in deps.get(node, []) if d in best), default=(0.0, []), key=lambda b: b[0])
        best[node] = (prior[0] + own, [*prior[1], node])
    if not best:
        return [], 0.0
    length, path = max(best.values(), key=lambda b: b[0])
    return path, length


def _max_width(records: dict[str, StepRecord]) -> int:
    edges = []
    for rec in records.values():
        if rec.start_s is not None and rec.end_s is not None and not rec.skipped:
            edges += [(rec.start_s, 1), (rec.end_s, -1)]
    width = peak = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        width += delta
        peak = max(peak, width)
    return peak


class Executor:
    def __init__(
        self,
        call: CallFn,
        *,
        describe: Callable[[str], Awaitable[ToolEntry | ToolResult | None]] | None = None,
        default_timeout_s: float | None = None,
        on_event: EventFn | None = None,
    ) -> None:
        self._call = call
        self._describe = describe
        self.default_timeout_s = default_timeout_s
        self._on_event = on_event

    async def _emit(self, kind: str, step_id: str, data: dict[str, Any]) -> None:
        if self._on_event is not None:
            maybe = self._on_event(kind, step_id, data)
            if maybe is not None:
                await maybe

    async def run(self, plan: Plan) -> PlanRun:
        analysis = analyse(plan)
        records = {s.id: StepRecord(s.id, s.tool) for s in plan.steps}
        steps = {s.id: s for s in plan.steps}
        done = {s.id: anyio.Event() for s in plan.steps}
        t0 = time.perf_counter()
        default_timeout = plan.timeout_s or self.default_timeout_s

        def finish(step_id: str, result: ToolResult, *, skipped: bool = False) -> None:
            rec = records[step_id]
            if rec.result is None:
                rec.result = result
                rec.skipped = skipped
                rec.end_s = time.perf_counter() - t0
                if rec.start_s is None:
                    rec.start_s = rec.end_s
                done[step_id].set()

        async def run_step(step_id: str) -> None:
            step = steps[step_id]
            if step_id in analysis.broken:
                finish(step_id, ToolResult.error("plan", analysis.broken[step_id]), skipped=True)
                return
            for dep in analysis.deps[step_id]:
                await done[dep].wait()
            values: dict[str, Any] = {}
            texts: dict[str, str] = {}
            for dep in analysis.deps[step_id]:
                res = records[dep].result
                assert res is not None
                if res.is_error:
                    if step.on_dep_error == "skip":
                        reason = res.text if records[dep].skipped else f"{res.error_kind or 'error'}: {res.text}"
                        finish(
                            step_id,
                            ToolResult.error("plan", f"skipped: step {dep!r} failed ({reason})"[:600]),
                            skipped=True,
                        )
                        return
                    values[dep] = {"error": res.text, "error_kind": res.error_kind}
                else:
                    values[dep] = res.value()
                texts[dep] = res.text
            # The tool's schema decides whether a whole-string ``${id}`` is passed as its value or its text.
            entry = await self._describe(step.tool) if self._describe is not None else None
            entry = entry if isinstance(entry, ToolEntry) else None
            try:
                args = resolve_args(step.args, values, texts=texts, schema=entry.input_schema if entry else None)
            except RefError as exc:
                finish(step_id, ToolResult.error("plan", str(exc)), skipped=True)
                return
            retries = step.retries
            explicit = retries is not None
            if retries is None:
                retries = 1 if entry is not None and entry.retry_safe else 0
            records[step_id].start_s = time.perf_counter() - t0
            await self._emit("started", step_id, {"tool": step.tool, "args": args})

            async def progress(value: float, total: float | None, message: str | None) -> None:
                await self._emit("progress", step_id, {"progress": value, "total": total, "message": message})

            attempt = 0
            while True:
                attempt += 1
                result = await self._call(step.tool, args, timeout=step.timeout_s or default_timeout, progress=progress)
                retry = (
                    result.is_error
                    and attempt <= retries
                    and result.error_kind not in _NO_RETRY
                    and (result.error_kind != "timeout" or explicit)
                )
                if not retry:
                    break
                log.info("retrying %s (%s) after: %s", step_id, step.tool, result.text[:200])
                await anyio.sleep(min(0.05 * 2**attempt, 1.0))
            result.attempts = attempt
            finish(step_id, result)
            await self._emit("finished", step_id, result.to_json())

        async with anyio.create_task_group() as tg:
            for step_id in analysis.order:
                tg.start_soon(run_step, step_id)
        makespan = time.perf_counter() - t0
        path, path_s = _critical_path(records, analysis.deps, analysis.order)
        busy = sum((r.end_s or 0) - (r.start_s or 0) for r in records.values() if not r.skipped)
        failed = [i for i, r in records.items() if r.result is not None and r.result.is_error]
        metrics = {
            "makespan_s": round(makespan, 6),
            "critical_path": path,
            "critical_path_s": round(path_s, 6),
            "parallel_width_max": _max_width(records),
            "parallel_width_mean": round(busy / makespan, 3) if makespan > 0 else 0.0,
            "sum_step_s": round(busy, 6),
            "steps": len(records),
            "failed": failed,
            "step_timing": {
                i: {"start_s": round(r.start_s or 0, 6), "end_s": round(r.end_s or 0, 6)} for i, r in records.items()
            },
        }
        return PlanRun(steps={s.id: records[s.id] for s in plan.steps}, metrics=metrics)
