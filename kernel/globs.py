"""The glob language of capability patterns, and a sound containment test used to intersect them.

Patterns name tools (``server.tool``), memory namespaces and models. Only two wildcards exist: ``*`` (any
run of characters, dots included) and ``?`` (one character); every other character is literal, so
``[``/``]`` in a name never turn into character classes by surprise. Matching is case-sensitive.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["glob_covers", "glob_match", "globs_intersect", "globs_may_overlap", "matches_any"]


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.S)


def glob_match(pattern: str, name: str) -> bool:
    return _compile(pattern).fullmatch(name) is not None


def matches_any(patterns: tuple[str, ...] | list[str], name: str) -> bool:
    return any(glob_match(p, name) for p in patterns)


@lru_cache(maxsize=4096)
def glob_covers(outer: str, inner: str) -> bool:
    """True only if every name ``inner`` matches is matched by ``outer`` (sound, not complete: when in
    doubt it says no, so an intersection built from it may grant less, never more)."""
    # Dynamic programming over (position in outer, position in inner), treating inner's tokens as symbols:
    # outer's '*' absorbs any run of inner tokens; outer's '?' takes one inner literal or '?'; a literal
    # only matches the same literal. Inner's '*' can only be absorbed by outer's '*'.
    n, m = len(outer), len(inner)
    reach = [[False] * (m + 1) for _ in range(n + 1)]
    reach[0][0] = True
    for i in range(n + 1):
        for j in range(m + 1):
            if not reach[i][j] or i == n:
                continue
            token = outer[i]
            if token == "*":
                reach[i + 1][j] = True  # empty run
                if j < m:
                    reach[i][j + 1] = True  # absorb one more inner token
            elif j < m:
                other = inner[j]
                if (token == "?" and other != "*") or (token not in "*?" and other == token):
                    reach[i + 1][j + 1] = True
    return reach[n][m]


def globs_intersect(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    """Patterns matching (a subset of) what both ``a`` and ``b`` match."""
    out: list[str] = []
    for p in a:
        if any(glob_covers(q, p) for q in b) and p not in out:
            out.append(p)
    for q in b:
        if any(glob_covers(p, q) for p in a) and q not in out:
            out.append(q)
    return tuple(out)


def _literal_ends(pattern: str) -> tuple[str, str]:
    cut = [i for i, c in enumerate(pattern) if c in "*?"]
    if not cut:
        return pattern, pattern
    return pattern[: cut[0]], pattern[cut[-1] + 1 :]


def globs_may_overlap(a: str, b: str) -> bool:
    """False only if no name can match both (conservative: unsure means True)."""
    if "*" not in a and "?" not in a:
        return glob_match(b, a)
    if "*" not in b and "?" not in b:
        return glob_match(a, b)
    (pa, sa), (pb, sb) = _literal_ends(a), _literal_ends(b)
    if not (pa.startswith(pb) or pb.startswith(pa)):
        return False
    return sa.endswith(sb) or sb.endswith(sa)
