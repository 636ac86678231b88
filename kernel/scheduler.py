"""Scheduling policy: which sequences join the next decode step, and whose context leaves its slot.

A small pure object: it sees snapshots (``Candidate``, ``Resident``) and a time, and returns a ``Plan``.
The engine applies the plan. Nothing here touches llama.cpp, threads or clocks, so every rule is
unit-tested with plain values.

Rules:
- Priority classes ``realtime < high < normal < background`` (lower runs first). Waiting lifts a request
  one class per ``aging_s`` seconds, so background work never starves; but never above the best class
  waiting with it (nor above ``high``): aging settles who goes first between classes, and among equals
  the program order below does. (Lifting equals above each other turned program order into round robin:
  every program's next turn queued behind all that had waited longer, so all finished together at the end.)
- Within a class, programs, not requests (Autellix's discretised least attained service): an agent's whole
  run counts, so its attained service (tokens computed for it so far) puts it in a level (``levels``). A new
  arrival (nothing computed yet: level 0) goes first, so its prefill and first token come promptly;
  programs that have run longer than the last threshold drop behind (until a request of theirs has waited
  ``aging_s`` per level: then it is back at level 1, so a long-lived agent is never starved by a stream of
  equals). Within a level, the program that
  started first goes first (it is closest to done: with all programs alike this finishes them one set after
  another instead of all together at the end), then the one served least recently (round robin when the
  batch is narrower than the crowd), then the earliest request.
- At most ``max_batch`` sequences per step. A running sequence that no longer makes the cut is preempted at
  this token boundary; it keeps its KV unless its slot is needed.
- Working sets: a request that has no slot takes a free one, else an idle context's (one with no runnable
  request: suspended, then lowest class, then the one expected back last, then least recently used), else a
  running context's, but only one ordered after it that has used its quantum (``quantum_tokens`` since it got
  its slot) or is of a lower class. So 32 agents over 8 slots run in sets that fit for a quantum, instead of
  trading slots token by token.
- Decode tokens are placed before prefill, and prefill is chunked into what is left of ``token_budget``,
  so a long prompt never stalls the agents that are already generating.
- ``policy="fifo"`` is the baseline: arrival order, no priorities, no preemption of running work.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PRIORITY_RANK", "Candidate", "Plan", "Resident", "Scheduler", "ToolTimes"]

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
    #: Tokens computed for this request's program (its agent's context) over its whole run so far.
    attained: int = 0
    #: When the program (the agent's context) started; ``None``: when this request arrived.
    program_start: float | None = None


@dataclass(frozen=True)
class Resident:
    """A context that holds a slot."""

    key: Hashable
    priority: str
    last_used: float
    active: bool
    suspended: bool = False
    #: Tokens computed in this slot since the context got it (its quantum so far).
    served: int = 0
    #: When an idle context is expected to want its slot again (its agent waits on a tool); 0: unknown.
    expected_back: float = 0.0


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
        quantum_tokens: int = 64,
        levels: Sequence[int] = (1, 16384),
    ) -> None:
        if max_batch < 1 or token_budget < 1 or slots < 1:
            raise ValueError("max_batch, token_budget and slots must be positive")
        self.max_batch = max_batch
        self.token_budget = token_budget
        self.slots = slots
        self.aging_s = aging_s
        self.policy = policy
        self.quantum_tokens = quantum_tokens
        self.levels = tuple(levels)

    def effective_rank(self, candidate: Candidate, now: float, best: int = 0) -> int:
        """The class ``candidate`` competes in: its own, lifted by waiting, never above ``high`` nor above
        ``best`` (the best class among those it competes with)."""
        rank = PRIORITY_RANK.get(candidate.priority, PRIORITY_RANK["normal"])
        if self.aging_s > 0 and math.isfinite(now - candidate.arrived):
            rank -= int(max(0.0, now - candidate.arrived) // self.aging_s)
        return max(rank, 0 if candidate.priority == "realtime" else max(1, best))

    def ranks(self, candidates: Sequence[Candidate], now: float) -> dict[int, int]:
        """Each candidate's effective class (by request id), aged against the others."""
        best = min((PRIORITY_RANK.get(c.priority, PRIORITY_RANK["normal"]) for c in candidates), default=0)
        return {c.id: self.effective_rank(c, now, best) for c in candidates}

    def level(self, candidate: Candidate, now: float | None = None) -> int:
        """The program's attained-service level; a program past level 1 (a long-running one) that has waited
        ``aging_s`` per level is lifted back, never above level 1, so no equal starves it forever."""
        level = sum(1 for threshold in self.levels if candidate.attained >= threshold)
        if level > 1 and now is not None and self.aging_s > 0 and math.isfinite(now - candidate.arrived):
            level = max(1, level - int(max(0.0, now - candidate.arrived) // self.aging_s))
        return level

    def order(self, candidates: Sequence[Candidate], now: float) -> list[Candidate]:
        if self.policy == "fifo":
            return sorted(candidates, key=lambda c: (not c.started, c.arrived, c.id))
        ranks = self.ranks(candidates, now)
        return sorted(
            candidates,
            key=lambda c: (
                ranks[c.id],
                self.level(c, now),
                c.arrived if c.program_start is None else c.program_start,
                c.last_served,
                c.arrived,
                c.id,
            ),
        )

    def plan(self, candidates: Sequence[Candidate], residents: Sequence[Resident], now: float) -> Plan:
        plan = Plan()
        ordered = self.order(candidates, now)
        wanted = {c.key for c in candidates}
        by_key = {r.key: r for r in residents}
        free = self.slots - len(residents)
        # Idle contexts (no runnable request this step) are the first victims, best victim first.
        idle = sorted(
            (r for r in residents if r.key not in wanted),
            key=lambda r: (r.active, not r.suspended, -PRIORITY_RANK.get(r.priority, 2), -r.expected_back, r.last_used),
        )
        ranks = self.ranks(ordered, now)
        rank = {c.key: ranks[c.id] for c in ordered}
        chosen: list[Candidate] = []
        seen_keys: set[Hashable] = set()
        evicted: set[Hashable] = set()
        caused: dict[Hashable, Hashable | None] = {}  # admitted key -> the context it evicted
        for i, c in enumerate(ordered):
            if len(chosen) == self.max_batch:
                break
            if c.key in seen_keys or c.key in evicted:  # one request per context per step
                continue
            if not c.resident:
                victim: Hashable | None = None
                if free > 0:
                    free -= 1
                elif idle:
                    victim = idle.pop(0).key
                else:
                    victim = self._preempt(c, ordered[i + 1 :], by_key, seen_keys | evicted, rank)
                    if victim is None:
                        continue  # no slot for it this step; it does not take a place in the batch
                if victim is not None:
                    plan.evict.append(victim)
                    evicted.add(victim)
                caused[c.key] = victim
                plan.admit.append(c.key)
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
        for c in chosen:
            if c.id in allotted:
                plan.run.append((c.id, allotted[c.id]))
            elif not c.resident:  # no tokens for it this step: leave the slots as they were
                plan.admit.remove(c.key)
                victim = caused[c.key]
                if victim is not None:
                    plan.evict.remove(victim)
        return plan

    def _preempt(
        self,
        c: Candidate,
        later: Sequence[Candidate],
        residents: dict[Hashable, Resident],
        taken: set[Hashable],
        rank: dict[Hashable, int],
    ) -> Hashable | None:
        """A running context ordered after ``c`` that may give up its slot: one of a lower class at once,
        one of ``c``'s class once it has used its quantum. The last in order goes first."""
        if self.policy == "fifo":
            return None
        mine = rank[c.key]
        for other in reversed(later):
            r = residents.get(other.key)
            if r is None or other.key in taken or not other.resident:
                continue
            if rank[other.key] > mine or r.served >= self.quantum_tokens:
                return other.key
        return None


class ToolTimes:
    """How long each tool's calls usually take, learned from the calls the kernel made (an exponential moving
    average per tool). The kernel tells the engine when an agent that went to a tool is expected back, so the
    engine keeps the contexts of agents about to return and lets those that will be away longest go first."""

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha is in (0, 1]")
        self.alpha = alpha
        self._mean: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def expected(self, tool: str) -> float | None:
        """The usual duration of a call to ``tool`` in seconds; ``None`` before its first call ended."""
        return self._mean.get(tool)

    def observe(self, tool: str, seconds: float) -> None:
        seconds = max(0.0, seconds)
        mean = self._mean.get(tool)
        self._mean[tool] = seconds if mean is None else self.alpha * seconds + (1 - self.alpha) * mean
        self.calls[tool] = self.calls.get(tool, 0) + 1

    def to_json(self) -> dict[str, dict[str, float]]:
        return {t: {"mean_s": round(m, 4), "calls": self.calls[t]} for t, m in sorted(self._mean.items())}
