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


SCHEMA = {
    "type": "object",
    "$defs": {"Note": {"type": "object", "properties": {"body": {"type": "string"}, "meta": {"type": "object"}}}},
    "properties": {
        "content": {"type": "string"},
        "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "either": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "doc": {"type": "object"},
        "count": {"type": "integer"},
        "ratio": {"type": ["number", "string"]},
        "untyped": {},
        "note": {"$ref": "#/$defs/Note"},
        "lines": {"type": "array", "items": {"type": "string"}},
        "mode": {"enum": ["a", "b"]},
    },
}
RESULTS = {"r": {"content": "alpha", "n": 3, "ok": True}, "t": "plain"}
TEXTS = {"r": "the tool's own text", "t": "plain"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"content": "${r}"}, {"content": "the tool's own text"}),  # a whole result: the result's own text
        ({"content": "${r.content}"}, {"content": "alpha"}),
        ({"content": "${r.n}"}, {"content": "3"}),
        ({"content": "${r.ok}"}, {"content": "true"}),
        ({"maybe": "${r}"}, {"maybe": "the tool's own text"}),
        ({"either": "${r}"}, {"either": RESULTS["r"]}),  # an object fits: it stays one
        ({"doc": "${r}"}, {"doc": RESULTS["r"]}),
        ({"count": "${r.n}"}, {"count": 3}),
        ({"ratio": "${r.n}"}, {"ratio": 3}),  # an integer is a number
        ({"untyped": "${r}"}, {"untyped": RESULTS["r"]}),  # no type: unchanged
        ({"unknown_arg": "${r}"}, {"unknown_arg": RESULTS["r"]}),
        ({"note": {"body": "${r}", "meta": "${r}"}}, {"note": {"body": "the tool's own text", "meta": RESULTS["r"]}}),
        ({"lines": ["${r}", "${r.n}", "x"]}, {"lines": ["the tool's own text", "3", "x"]}),
        ({"mode": "${r}"}, {"mode": "the tool's own text"}),  # an enum of strings wants a string
        ({"content": "${t}"}, {"content": "plain"}),
        ({"content": "n=${r.n}, all=${r}"}, {"content": "n=3, all=the tool's own text"}),
    ],
)
def test_whole_references_become_text_where_the_schema_wants_a_string(args: dict, expected: dict) -> None:
    assert resolve_args(args, RESULTS, texts=TEXTS, schema=SCHEMA) == expected


def test_without_texts_a_whole_result_is_compact_json() -> None:
    assert resolve_args({"content": "${r}"}, RESULTS, schema=SCHEMA) == {
        "content": '{"content":"alpha","n":3,"ok":true}'
    }
    assert resolve_args({"content": "${r}"}, RESULTS) == {"content": RESULTS["r"]}  # no schema: typed as before


def test_self_referencing_schemas_do_not_loop() -> None:
    schema = {"$defs": {"A": {"$ref": "#/$defs/A"}}, "properties": {"x": {"$ref": "#/$defs/A"}}}
    assert resolve_args({"x": "${r}"}, RESULTS, texts=TEXTS, schema=schema) == {"x": RESULTS["r"]}


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
