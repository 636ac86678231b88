"""Scheduling policy: which sequences join the next decode step, and whose context leaves its slot.

A small pure object: it sees snapshots (``Candidate``, ``Resident``) and a time, and returns a ``Plan``.
The engine applies the plan. Nothing here touches llama.cpp, threads or clocks, so every rule is
unit-tested with plain values.

Rules:
- Priority classes ``realtime < high < normal < background`` (lower runs first). Waiting lifts a request
  one class per ``aging_s`` seconds, so background work never starves.
- Among equals, the one served least recently goes first (round robin when the batch is narrower than
  the crowd), then the earliest arrival.
- At most ``max_batch`` sequences per step. A running sequence that no longer makes the cut is preempted at
  this token boundary; it keeps its KV unless its slot is needed.
- Decode tokens are placed before prefill, and prefill is chunked into what is left of ``token_budget``,
  so a long prompt never stalls the agents that are already generating.
- Slot victims: contexts with no runnable request first (suspended, then waiting on tools), then the lowest
  class, then the least recently used.
- ``policy="fifo"`` is the baseline: arrival order, no priorities, no preemption of running work.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PRIORITY_RANK", "Candidate", "Plan", "Resident", "Scheduler"]

PRIORITY_RANK = {"realtime": 0, "high": 1, "normal": 2, "background": 3}


@dataclass(frozen=True)
class Candidate:
    """A request that wants compute now."""

    id: int
    key: Hashable
    priority: str
    arrived: float
    last_served: float
    resident: bool
    prefill_left: int
    started: bool = False


@dataclass(frozen=True)
class Resident:
    """A context that holds a slot."""

    key: Hashable
    priority: str
    last_used: float
    active: bool
    suspended: bool = False


@dataclass
class Plan:
    #: (request id, tokens this step): 1 for a decode step, the chunk size for prefill.
    run: list[tuple[int, int]] = field(default_factory=list)
    #: Contexts to move out of their slots, in order, before ``admit`` takes them.
    evict: list[Hashable] = field(default_factory=list)
    #: Contexts that need a slot this step.
    admit: list[Hashable] = field(default_factory=list)

    def tokens(self) -> int:
        return sum(n for _, n in self.run)


class Scheduler:
    def __init__(
        self,
        *,
        max_batch: int,
        token_budget: int,
        slots: int,
        aging_s: float = 10.0,
        policy: Literal["priority", "fifo"] = "priority",
    ) -> None:
        if max_batch < 1 or token_budget < 1 or slots < 1:
            raise ValueError("max_batch, token_budget and slots must be positive")
        self.max_batch = max_batch
        self.token_budget = token_budget
        self.slots = slots
        self.aging_s = aging_s
        self.policy = policy

    def effective_rank(self, candidate: Candidate, now: float) -> int:
        rank = PRIORITY_RANK.get(candidate.priority, PRIORITY_RANK["normal"])
        if self.aging_s > 0 and math.isfinite(now - candidate.arrived):
            rank -= int(max(0.0, now - candidate.arrived) // self.aging_s)
        return max(rank, 0 if candidate.priority == "realtime" else 1)

    def order(self, candidates: Sequence[Candidate], now: float) -> list[Candidate]:
        if self.policy == "fifo":
            return sorted(candidates, key=lambda c: (not c.started, c.arrived, c.id))
        return sorted(candidates, key=lambda c: (self.effective_rank(c, now), c.last_served, c.arrived, c.id))

    def plan(self, candidates: Sequence[Candidate], residents: Sequence[Resident], now: float) -> Plan:
        plan = Plan()
        ordered = self.order(candidates, now)
        chosen: list[Candidate] = []
        seen_keys: set[Hashable] = set()
        for c in ordered:
            if len(chosen) == self.max_batch:
                break
            if c.key in seen_keys:  # one request per context per step
                continue
            chosen.append(c)
            seen_keys.add(c.key)

        # Token budget: decodes first, then prefill chunks in priority order.
        budget = self.token_budget
        allotted: dict[int, int] = {}
        for c in chosen:
            if c.prefill_left == 0 and budget > 0:
                allotted[c.id] = 1
                budget -= 1
        for c in chosen:
            if c.prefill_left > 0 and budget > 0:
                allotted[c.id] = min(c.prefill_left, budget)
                budget -= allotted[c.id]
        running = [c for c in chosen if c.id in allotted]

        # Slots: residents not running this step are victims, best victim first.
        free = self.slots - len(residents)
        running_keys = {c.key for c in running}
        victims = sorted(
            (r for r in residents if r.key not in running_keys),
            key=lambda r: (r.active, not r.suspended, -PRIORITY_RANK.get(r.priority, 2), r.last_used),
        )
        for c in running:
            if not c.resident:
                if free > 0:
                    free -= 1
                elif victims:
                    plan.evict.append(victims.pop(0).key)
                else:
                    continue  # no slot for it this step
                plan.admit.append(c.key)
            plan.run.append((c.id, allotted[c.id]))
        return plan
