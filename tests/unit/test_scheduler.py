"""The scheduling policy, with plain values and a virtual clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kernel.scheduler import Candidate, Resident, Scheduler


def cand(
    id: int,
    priority: str = "normal",
    *,
    arrived: float = 0.0,
    served: float = 0.0,
    resident: bool = True,
    prefill: int = 0,
    key: object = None,
    started: bool = True,
) -> Candidate:
    return Candidate(id, key if key is not None else id, priority, arrived, served, resident, prefill, started)


def test_higher_class_preempts_at_the_token_boundary() -> None:
    s = Scheduler(max_batch=2, token_budget=64, slots=4)
    background = [cand(i, "background") for i in range(2)]
    assert [r for r, _ in s.plan(background, [], now=1.0).run] == [0, 1]
    plan = s.plan([*background, cand(9, "high", arrived=1.0)], [], now=1.0)
    assert [r for r, _ in plan.run] == [9, 0]


def test_fifo_keeps_running_work_and_ignores_class() -> None:
    s = Scheduler(max_batch=2, token_budget=64, slots=4, policy="fifo")
    running = [cand(0, "background"), cand(1, "background", arrived=0.5)]
    plan = s.plan([*running, cand(9, "realtime", arrived=1.0, started=False)], [], now=1.0)
    assert [r for r, _ in plan.run] == [0, 1]


def test_equals_share_a_narrow_batch_round_robin() -> None:
    s = Scheduler(max_batch=2, token_budget=64, slots=8)
    served = dict.fromkeys(range(4), 0.0)
    counts = dict.fromkeys(range(4), 0)
    for step in range(1, 101):
        plan = s.plan([cand(i, served=served[i]) for i in range(4)], [], now=float(step))
        for rid, _ in plan.run:
            served[rid] = float(step)
            counts[rid] += 1
    assert set(counts.values()) == {50}


def test_aging_lifts_a_starving_background_request() -> None:
    s = Scheduler(max_batch=1, token_budget=64, slots=4, aging_s=10.0)
    crowd = [cand(i, "normal", arrived=100.0, served=99.0) for i in range(3)]
    old = cand(7, "background", arrived=0.0)
    assert s.plan([*crowd, old], [], now=5.0).run[0][0] != 7
    # after waiting long enough it competes as a "high" and wins
    assert s.plan([*crowd, old], [], now=25.0).run[0][0] == 7
    # realtime stays the top class; aging never lifts anyone above "high"
    assert s.effective_rank(old, now=1e9) == 1


def test_decode_first_then_prefill_chunks_within_budget() -> None:
    s = Scheduler(max_batch=8, token_budget=10, slots=8)
    plan = s.plan([cand(1, prefill=100), cand(2), cand(3), cand(4, prefill=3)], [], now=0.0)
    assert dict(plan.run) == {2: 1, 3: 1, 1: 8}
    assert plan.tokens() == 10


def test_victims_are_idle_then_suspended_then_lowest_class_then_lru() -> None:
    s = Scheduler(max_batch=4, token_budget=64, slots=3)
    residents = [
        Resident("busy-bg", "background", last_used=1.0, active=True),
        Resident("idle-normal", "normal", last_used=5.0, active=False),
        Resident("idle-suspended", "high", last_used=9.0, active=False, suspended=True),
    ]
    plan = s.plan([cand(1, key="new", resident=False, started=False)], residents, now=10.0)
    assert plan.evict == ["idle-suspended"]
    assert plan.admit == ["new"]
    plan = s.plan([cand(1, key="a", resident=False), cand(2, key="b", resident=False)], residents, now=10.0)
    assert plan.evict == ["idle-suspended", "idle-normal"]


def test_no_victim_means_the_request_waits() -> None:
    s = Scheduler(max_batch=4, token_budget=64, slots=1)
    residents = [Resident("x", "normal", last_used=0.0, active=True)]
    plan = s.plan([cand(1, key="x"), cand(2, key="y", resident=False)], residents, now=1.0)
    assert [r for r, _ in plan.run] == [1]
    assert plan.evict == [] and plan.admit == []


def test_one_request_per_context_per_step() -> None:
    s = Scheduler(max_batch=4, token_budget=64, slots=4)
    plan = s.plan([cand(1, key="a"), cand(2, key="a", arrived=1.0)], [], now=2.0)
    assert [r for r, _ in plan.run] == [1]


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError):
        Scheduler(max_batch=0, token_budget=1, slots=1)


def test_waiting_does_not_reorder_programs_of_one_class() -> None:
    """Among equals, program order decides: an earlier program's next turn goes before a later program whose
    request has waited longer (aging that lifted equals above each other made every program's next turn queue
    behind all that had waited, so all programs finished together at the end)."""
    s = Scheduler(max_batch=1, token_budget=64, slots=4, aging_s=10.0)
    back_from_tool = replace(cand(1, arrived=100.0, started=False), program_start=0.0, attained=900)
    waited_long = replace(cand(2, arrived=50.0), program_start=40.0, attained=600)
    assert s.plan([waited_long, back_from_tool], [], now=101.0).run[0][0] == 1
    # a lower class still ages up to the class it waits with, and then the program order applies
    bg = replace(cand(3, "background", arrived=0.0), program_start=-1.0, attained=10)
    assert s.plan([waited_long, back_from_tool, bg], [], now=5.0).run[0][0] == 1
    assert s.plan([waited_long, back_from_tool, bg], [], now=101.0).run[0][0] == 3
