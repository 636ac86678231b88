"""Plan documents: references, implicit dependencies, and the problems that stop a step (named, not hung)."""

from __future__ import annotations

import pytest

from aios.errors import UsageError
from tools.plan import RefError, analyse, find_refs, load_plan, resolve_args


def plan(*steps: dict) -> object:
    return load_plan({"steps": list(steps)})


def test_references_become_dependencies() -> None:
    p = plan(
        {"id": "a", "tool": "s.t"},
        {"id": "b", "tool": "s.t", "args": {"x": "${a.items.0}", "y": ["pre ${a} post"]}},
        {"id": "c", "tool": "s.t", "deps": ["b"]},
    )
    a = analyse(p)
    assert a.deps == {"a": [], "b": ["a"], "c": ["b"]}
    assert a.order == ["a", "b", "c"] and a.broken == {}
    assert find_refs({"k": ["${x.y}", {"z": "${w}"}]}) == {"x", "w"}


def test_cycle_dangling_duplicate_and_self_are_named() -> None:
    p = plan(
        {"id": "a", "tool": "s.t", "args": {"v": "${b}"}},
        {"id": "b", "tool": "s.t", "deps": ["a"]},
        {"id": "c", "tool": "s.t", "deps": ["b"]},
        {"id": "d", "tool": "s.t", "args": {"v": "${ghost.x}"}},
        {"id": "e", "tool": "s.t", "deps": ["e"]},
        {"id": "f", "tool": "s.t"},
        {"id": "f", "tool": "s.t"},
        {"id": "g", "tool": "s.t"},
    )
    broken = analyse(p).broken
    assert broken["a"].startswith("dependency cycle")
    assert "a -> b -> a" in broken["a"] or "b -> a -> b" in broken["a"]
    assert "waits on the cycle" in broken["c"]
    assert broken["d"] == "step 'd' references unknown step(s) ghost"
    assert broken["e"] == "step 'e' depends on itself"
    assert broken["f"] == "duplicate step id 'f'"
    assert "g" not in broken


def test_resolve_whole_values_keep_their_type() -> None:
    results = {"a": {"items": [{"n": 3}], "name": "x"}, "t": '{"iso": "2026"}', "s": "plain"}
    assert resolve_args({"v": "${a.items}"}, results) == {"v": [{"n": 3}]}
    assert resolve_args("${a.items.0.n}", results) == 3
    assert resolve_args("${a.items.-1.n}", results) == 3
    assert resolve_args("${t.iso}", results) == "2026"  # text results that hold JSON can be walked
    assert resolve_args("name=${a.name}, n=${a.items.0.n}, s=${s}", results) == "name=x, n=3, s=plain"
    assert resolve_args({"nested": ["${s}", 1, None]}, results) == {"nested": ["plain", 1, None]}


@pytest.mark.parametrize("ref", ["${a.missing}", "${a.items.5}", "${s.x}", "${a.items.0.n.deeper}"])
def test_bad_paths_are_ref_errors(ref: str) -> None:
    with pytest.raises(RefError, match=r"\$\{"):
        resolve_args(ref, {"a": {"items": [{"n": 3}]}, "s": "plain"})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"steps": []}, "steps: List should have at least 1 item"),
        ({"steps": [{"id": "1bad", "tool": "s.t"}]}, "steps.0.id"),
        ({"steps": [{"id": "a", "tool": "s.t", "bogus": 1}]}, "steps.0.bogus: Extra inputs"),
        ({"steps": [{"id": "a", "tool": "s.t", "timeout_s": 0}]}, "steps.0.timeout_s"),
        ({"nosteps": 1}, "steps: Field required"),
    ],
)
def test_malformed_plans_are_one_line_usage_errors(doc: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_plan(doc, source="p.json")


def test_a_bare_list_is_a_plan() -> None:
    assert load_plan([{"id": "a", "tool": "s.t"}]).steps[0].id == "a"
