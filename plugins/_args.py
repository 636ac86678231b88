"""Tool arguments a small model cannot be trusted with: paths and values the goal or earlier results already give.

A 135M model asked for ``path`` writes a plausible path from its training data (``/Users/me/Documents/x.csv``);
the goal names the real one. Path-like arguments are therefore constrained to the paths the goal and earlier
results name (an enum in the argument grammar) and, when a plan was written without that grammar, resolved
against them afterwards (a relative name joined to the folder the goal names, a stray path replaced by the named
one that fits best).
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["PATH_KEYS", "ground_args", "grounded_value", "is_path_key", "known_paths", "numbers_in"]

PATH_KEYS = frozenset(
    {
        "path",
        "paths",
        "file",
        "filename",
        "file_path",
        "filepath",
        "directory",
        "dir",
        "folder",
        "root",
        "repo_path",
        "repository",
        "source",
        "destination",
        "src",
        "dst",
        "cwd",
    }
)
_ABS = re.compile(r"(?<![\w.~/:])(/[^\s,;'\"()<>|\]\[{}]+)")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")


def is_path_key(name: str) -> bool:
    low = name.lower()
    return low in PATH_KEYS or low.endswith(("_path", "_file", "_dir", "_directory", "_folder"))


def known_paths(*texts: str) -> list[str]:
    """Absolute paths named in ``texts`` (the goal first, then results), in order, without trailing punctuation."""
    found = [m.rstrip(".:!?") for text in texts for m in _ABS.findall(text)]
    return list(dict.fromkeys(p for p in found if len(p) > 1))


def numbers_in(text: str) -> list[str]:
    return _NUMBER.findall(text)


def grounded_value(value: str, known: list[str]) -> str:
    """``value`` if it is one of ``known`` (or there is nothing to ground it in); otherwise the known path it means:
    a relative name joined to a named folder where that file exists, the named path with the same last part, or
    the first named path."""
    if not known or value in known or "${" in value:  # a reference to an earlier step's result stays
        return value
    value = value.strip()
    if value and not value.startswith("/"):
        for base in known:
            candidate = os.path.normpath(os.path.join(base, value))
            if os.path.exists(candidate):
                return candidate
    tail = os.path.basename(value.rstrip("/"))
    if tail:
        same = [k for k in known if os.path.basename(k.rstrip("/")) == tail]
        if same:
            return same[0]
        for base in known:
            candidate = os.path.join(base, tail)
            if os.path.isdir(base) and os.path.exists(candidate):
                return candidate
    return known[0]


def ground_args(args: dict[str, Any], known: list[str]) -> dict[str, Any]:
    """``args`` with every path-like string argument grounded in ``known`` (lists of paths item by item)."""
    out = dict(args)
    for key, value in args.items():
        if not is_path_key(key):
            continue
        if isinstance(value, str):
            out[key] = grounded_value(value, known)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = [grounded_value(v, known) for v in value]
    return out
