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

from plugins.extract import STOP

__all__ = [
    "FREE_TEXT_KEYS",
    "PATH_KEYS",
    "error_options",
    "fixed_args",
    "ground_args",
    "grounded_value",
    "is_path_key",
    "is_query_key",
    "kind_filtered",
    "known_paths",
    "named_values",
    "numbers_in",
    "query_text",
    "string_candidates",
]

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


#: Arguments whose value is free text a model may write (a search query is made from the step's own words).
FREE_TEXT_KEYS = frozenset(
    {
        "text",
        "content",
        "message",
        "prompt",
        "body",
        "description",
        "title",
        "comment",
        "note",
        "pattern",
        "expression",
        "code",
        "command",
        "input",
        "data",
        "summary",
        "reason",
        "answer",
    }
)
QUERY_KEYS = frozenset({"query", "q", "search", "question", "keywords", "terms", "search_query"})
#: Words that say what to do with a value, never the value itself (a column is "cost", not "total").
_NOT_VALUES = frozenset(
    """total sum average mean largest biggest highest maximum max smallest lowest minimum min count multiply
    multiplied divide divided add added subtract subtracted plus minus times result convert converted time
    timezone zone date year day today now current latest last first""".split()
)
_ENTITY = re.compile(
    r"'([^'\n]{1,60})'|\"([^\"\n]{1,60})\"|(?<![\w/])([A-Za-z][\w-]*(?:/[A-Za-z][\w+-]*)+)|"
    r"(?<![\d:+-])(\d{1,2}:\d{2})(?!\d)|\b(\d{4}-\d{2}-\d{2})\b|\b([A-Z][A-Za-z0-9_.-]*[A-Za-z0-9])\b"
)
#: How a value of an argument is written, by the argument's name: a time zone, a time of day, a date, a URL.
_ARG_KINDS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (re.compile(r"timezone|time_zone|^tz$|zone"), re.compile(r"^(?:[A-Za-z_]+(?:/[A-Za-z_+-]+)+|UTC|GMT|Z)$")),
    (re.compile(r"time"), re.compile(r"^\d{1,2}:\d{2}$")),
    (re.compile(r"date"), re.compile(r"^\d{4}-\d{2}-\d{2}$")),
    (re.compile(r"url|uri|link"), re.compile(r"^https?://\S+$")),
)
_SOURCE = re.compile(r"^(?:source|from|src|origin|input)(?:_|$)|_from$|^from_")
_TARGET = re.compile(r"^(?:target|to|dst|dest|destination|output)(?:_|$)|_to$|^to_")
_OPTIONS = (
    re.compile(r"\((?:[\w ]{1,30}:\s*)?([^()\n:]{1,300},[^()\n:]{1,300})\)"),
    re.compile(
        r"(?:valid|available|allowed|expected|one of|choices|options|known)[^:\n]{0,30}:\s*([^\n.]{1,300})", re.I
    ),
)


def is_query_key(name: str) -> bool:
    return name.lower() in QUERY_KEYS


def query_text(part: str) -> str:
    """A search query from a step's own words: its content words, without paths and hints about where to look."""
    text = _ABS.sub(" ", part)
    text = re.sub(
        r"\b(?:look|search|check|find)\s+(?:in|through)?\s*(?:my|the)?\s*(?:memory|notes|files)\b",
        " ",
        text,
        flags=re.I,
    )
    words = [w for w in re.findall(r"[\w'.-]+", text) if w.lower().strip(".") not in STOP]
    return " ".join(w.strip(".") for w in words) or part.strip()


def string_candidates(*texts: str) -> list[str]:
    """Values a string argument could be copied from, in order: quoted strings, time zones and other a/b names,
    times, dates, capitalised names, then the content words (not the words that say what to do with a value)."""
    entities: list[str] = [e for text in texts for e in named_values(text)]
    words: list[str] = []
    for text in texts:
        bare = _ABS.sub(" ", text)
        for word in re.findall(r"[A-Za-z][A-Za-z_-]{2,}", bare):
            low = word.lower()
            if low not in STOP and low not in _NOT_VALUES:
                words.append(low)
    return list(dict.fromkeys(entities + words))[:24]


def named_values(text: str) -> list[str]:
    """The values ``text`` names (not its paths): quoted strings, a/b names, times, dates, capitalised names."""
    out = []
    for match in _ENTITY.finditer(_ABS.sub(" ", text)):
        value = next(g for g in match.groups() if g)
        if value.lower() not in STOP and value.lower() not in _NOT_VALUES:
            out.append(value)
    return list(dict.fromkeys(out))


def kind_filtered(name: str, candidates: list[str]) -> list[str] | None:
    """The candidates written the way an argument called ``name`` is (a time zone for ``timezone``); None when its
    name says no kind."""
    low = name.lower()
    for names, written in _ARG_KINDS:
        if names.search(low):
            return [c for c in candidates if written.match(c)]
    return None


def error_options(error: str, args: dict[str, Any]) -> dict[str, list[str]]:
    """The values a failed call's error lists as valid, for the argument whose value it names:
    ``no column 'total' (columns: item, cost)`` gives ``{"column": ["item", "cost"]}``."""
    named = {k for k, v in args.items() if isinstance(v, str) and v and (f"'{v}'" in error or f'"{v}"' in error)}
    if not named:
        named = {k for k, v in args.items() if isinstance(v, str) and k.lower() in error.lower()}
    for pattern in _OPTIONS:
        match = pattern.search(error)
        if match:
            options = [o.strip().strip("'\"") for o in match.group(1).split(",") if o.strip()]
            options = [o for o in options if 0 < len(o) <= 60]
            if len(options) >= 2 and len(named) == 1:
                return {next(iter(named)): options}
    return {}


def fixed_args(schema: dict[str, Any], order_text: str) -> dict[str, Any] | None:
    """The arguments when the schema leaves no choice: each property an enum of one value, or two properties
    sharing the same two values where one is the source and the other the target (``from X to Y``: the first
    mentioned is the source). None when a choice is left to make."""
    props: dict[str, Any] = schema.get("properties") or {}
    out: dict[str, Any] = {}
    open_: dict[str, list[Any]] = {}
    for name, spec in props.items():
        values = spec.get("enum")
        if values is None:
            return None
        if len(values) == 1:
            out[name] = values[0]
        else:
            open_[name] = list(values)
    if not open_:
        return out
    if len(open_) == 2:
        (a, va), (b, vb) = open_.items()
        if va == vb and len(va) == 2 and all(isinstance(v, str) for v in va):
            first, second = sorted(va, key=lambda v: order_text.find(v) if v in order_text else len(order_text))
            if _SOURCE.search(a.lower()) and _TARGET.search(b.lower()):
                return {**out, a: first, b: second}
            if _SOURCE.search(b.lower()) and _TARGET.search(a.lower()):
                return {**out, b: first, a: second}
    return None
