"""Properties of the capability glob matcher and of attenuation (hypothesis): containment is sound, and an
intersected capability set is never more permissive than either side, for any name."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from aios.api import Capabilities
from kernel.access import TOP, AccessGuard, attenuate
from kernel.globs import glob_covers, glob_match, globs_intersect, globs_may_overlap
from kernel.process import Process
from kernel.syscalls import Access

NAMES = st.text(alphabet="ab.", max_size=6)
PATTERNS = st.text(alphabet="ab.*?", max_size=5)
PATTERN_SETS = st.lists(PATTERNS, max_size=3).map(tuple)
RANK = {"allow": 0, "ask": 1, "deny": 2}


def fill(pattern: str, data: st.DataObject) -> str:
    """A name the pattern matches: each wildcard replaced by a random fitting string."""
    out = []
    for char in pattern:
        if char == "*":
            out.append(data.draw(NAMES))
        elif char == "?":
            out.append(data.draw(st.sampled_from("ab.")))
        else:
            out.append(char)
    return "".join(out)


@given(NAMES, NAMES)
def test_a_literal_pattern_matches_only_itself(pattern: str, name: str) -> None:
    assert glob_match(pattern, name) == (pattern == name)


@given(NAMES)
def test_star_matches_everything_and_brackets_are_literal(name: str) -> None:
    assert glob_match("*", name)
    assert glob_match("[ab]", "[ab]") and not glob_match("[ab]", "a")
    assert not glob_match("fs.*", "fsx" + name)


@given(PATTERNS, st.data())
def test_a_pattern_matches_every_name_made_from_it(pattern: str, data: st.DataObject) -> None:
    assert glob_match(pattern, fill(pattern, data))


@settings(max_examples=300)
@given(PATTERNS, PATTERNS, st.data())
def test_containment_is_sound(outer: str, inner: str, data: st.DataObject) -> None:
    if glob_covers(outer, inner):
        assert glob_match(outer, fill(inner, data))


@settings(max_examples=300)
@given(PATTERNS, PATTERNS, NAMES)
def test_overlap_is_conservative(a: str, b: str, name: str) -> None:
    if glob_match(a, name) and glob_match(b, name):
        assert globs_may_overlap(a, b)


@settings(max_examples=300)
@given(PATTERN_SETS, PATTERN_SETS, NAMES)
def test_intersection_matches_only_what_both_match(a: tuple[str, ...], b: tuple[str, ...], name: str) -> None:
    if any(glob_match(p, name) for p in globs_intersect(a, b)):
        assert any(glob_match(p, name) for p in a) and any(glob_match(p, name) for p in b)


def test_containment_examples() -> None:
    assert glob_covers("fs.*", "fs.read") and glob_covers("fs.*", "fs.re*") and glob_covers("*", "a?b*")
    assert not glob_covers("a?", "a*")  # "a*" also matches "abc"
    assert not glob_covers("fs.read", "fs.*")
    assert globs_intersect(("git.*",), ("*",)) == ("git.*",)


TOOL_CAPS = st.builds(
    lambda tools, ask, deny: Capabilities(tools=tools, tools_ask=ask, tools_deny=deny),
    PATTERN_SETS,
    PATTERN_SETS,
    PATTERN_SETS,
)
PROC = Process(pid=1, agent="x", goal="", priority="normal", token_budget=0, interactive=False)
GUARD = AccessGuard()


def decision(caps: Capabilities, access: Access) -> str:
    return GUARD.decide(PROC, caps, access)[0]


@settings(max_examples=400)
@given(TOOL_CAPS, TOOL_CAPS, NAMES)
def test_attenuated_tools_are_never_more_permissive(a: Capabilities, b: Capabilities, name: str) -> None:
    both = attenuate(a, b)
    access = Access("tool", name)
    assert RANK[decision(both, access)] >= max(RANK[decision(a, access)], RANK[decision(b, access)])


@settings(max_examples=200)
@given(PATTERN_SETS, PATTERN_SETS, PATTERN_SETS, PATTERN_SETS, NAMES, st.booleans())
def test_attenuated_memory_and_models_are_never_more_permissive(
    ra: tuple[str, ...], wa: tuple[str, ...], rb: tuple[str, ...], wb: tuple[str, ...], name: str, write: bool
) -> None:
    a = Capabilities(memory_read=ra, memory_write=wa, models=ra)
    b = Capabilities(memory_read=rb, memory_write=wb, models=rb)
    both = attenuate(a, b)
    for access in (Access("memory", name, write=write), Access("llm", name)):
        assert RANK[decision(both, access)] >= max(RANK[decision(a, access)], RANK[decision(b, access)])


def test_attenuating_with_top_changes_no_decision() -> None:
    caps = Capabilities(tools=("fs.*", "git.log"), tools_ask=("git.*",), tools_deny=("fs.rm",), models=("m*",))
    same = attenuate(caps, TOP)
    for name in ("fs.read", "fs.rm", "git.log", "git.push", "x.y"):
        assert decision(same, Access("tool", name)) == decision(caps, Access("tool", name))
    assert same.max_children == 0 and not same.network


SUBDIRS = st.lists(st.sampled_from(["a", "b", "a/b", "a/c", "b/a", ""]), max_size=3).map(tuple)


@settings(max_examples=200, deadline=None)
@given(SUBDIRS, SUBDIRS, SUBDIRS, SUBDIRS, st.sampled_from(["a/x", "a/b/x", "b/x", "c", "a/c/d/x", "x"]), st.booleans())
def test_attenuated_files_are_never_more_permissive(
    ra: tuple[str, ...], wa: tuple[str, ...], rb: tuple[str, ...], wb: tuple[str, ...], rel: str, write: bool
) -> None:
    root = Path(os.path.realpath("/tmp")) / "aios-attenuate-prop"

    def grants(subs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(root / s) for s in subs)

    a = Capabilities(files_read=grants(ra), files_write=grants(wa))
    b = Capabilities(files_read=grants(rb), files_write=grants(wb))
    both = attenuate(a, b)
    access = Access("file", str(root / rel), write=write)
    assert RANK[decision(both, access)] >= max(RANK[decision(a, access)], RANK[decision(b, access)])
