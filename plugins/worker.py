"""The built-in ``worker`` agent: a step-by-step tool loop, for tasks where one result decides the next call.

Each step narrows the catalog to a few read-only candidates for the goal and what was learnt so far
(``ctx.tools.search``), has the model pick one (or ``done``) under an enum grammar (``ctx.llm.choose``), fills its
arguments under a grammar built from that tool's schema (``ctx.llm.json``), and calls it through the kernel
(checked, accounted, audited). A failed call is shown to the model at the next step, which may retry it
differently; after ``max_steps`` calls, or ``done``, the model answers from the results in a few words.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from plugins._args import (
    FREE_TEXT_KEYS,
    error_options,
    fixed_args,
    ground_args,
    is_path_key,
    is_query_key,
    kind_filtered,
    known_paths,
    named_values,
    numbers_in,
    query_text,
    string_candidates,
)
from plugins.answers import answer_form, answer_schema, format_answer
from plugins.extract import content_stems, extract_answer, extract_number, overlap
from plugins.goals import request_named_paths

__all__ = ["WorkerAgent", "args_schema"]

_SIMPLE = ("string", "number", "integer", "boolean")
SYSTEM = "You do a task by calling tools one at a time. Use the results so far. Be brief."


def _json_type(spec: dict[str, Any]) -> str:
    """A property's JSON type (``string`` when unsaid; the first non-null one of a list)."""
    kind = spec.get("type", "string")
    if isinstance(kind, list):
        return str(next((k for k in kind if k != "null"), "string"))
    return str(kind)


def args_schema(
    input_schema: dict[str, Any],
    paths: list[str] | None = None,
    numbers: list[float] | None = None,
    strings: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A closed object of a tool's required arguments with simple types (what a small model can fill); a path-like
    string argument is one of ``paths`` (those the goal and the results so far name), a number one of ``numbers``
    (likewise) and any other string one of ``strings[name]`` (values the step names, or a failed call's error
    listed), when there are any: a small model copies a value far better than it writes one."""
    given = input_schema.get("properties") or {}
    props: dict[str, Any] = {}
    required = list(input_schema.get("required") or [])
    for name in required + [n for n in strings or {} if n not in required and n in given]:
        spec = given.get(name) or {}
        kind = _json_type(spec)
        if paths and kind == "string" and "enum" not in spec and is_path_key(name):
            props[name] = {"enum": list(paths)}
        elif numbers and kind in ("number", "integer") and "enum" not in spec:
            props[name] = {"enum": [n for n in numbers if kind == "number" or float(n).is_integer()] or numbers}
        elif "enum" in spec:
            props[name] = {"enum": spec["enum"]}
        elif strings and kind == "string" and strings.get(name):
            props[name] = {"enum": list(strings[name])}
        elif kind in _SIMPLE:
            props[name] = {"type": kind, **({"maxLength": 120} if kind == "string" else {})}
        else:
            props[name] = {"type": "string", "maxLength": 120}
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def answer_object(goal: str) -> dict[str, Any]:
    """The final answer's schema, in the form the goal asks for (a number, yes/no, a path, a short text)."""
    return {
        "type": "object",
        "properties": {"answer": answer_schema(goal)},
        "required": ["answer"],
        "additionalProperties": False,
    }


def _required(tool: dict[str, Any]) -> list[str]:
    return list((tool.get("input_schema") or {}).get("required") or [])


#: Words a tool's name or description uses for a kind of file the goal names (by its extension); "" is a folder.
_KIND_WORDS = {
    "txt": r"text file|plain text|txt",
    "md": r"text file|plain text|markdown|md",
    "docx": r"docx|word",
    "doc": r"docx?|word",
    "csv": r"csv",
    "xlsx": r"xlsx|excel|spreadsheet",
    "pdf": r"pdf",
    "json": r"json",
    "": r"director(?:y|ies)|folder",
}


def _file_kind(path: str) -> str:
    """The words for the kind of file ``path`` is: "csv file", "docx Word document", "folder directory"."""
    ext = os.path.splitext(path.rstrip("/"))[1].lstrip(".").lower()
    words = {"txt": "text file", "md": "markdown text file", "docx": "docx Word document", "": "folder directory"}
    return words.get(ext, f"{ext} file")


def fitting(goal: str, tools: dict[str, dict[str, Any]], paths: list[str]) -> tuple[list[str], bool]:
    """The candidates that fit, in rank order: first a tool the goal names (``get-sum``, a word sharing its stem:
    "multiplied" for ``multiply``, or its server: "the git repository" for ``git.*``) that takes a path if the goal
    names one, then one made for the kind of file the goal names (``read_docx`` for a .docx, a text reader for a
    .txt, a folder lister for a folder); then, with paths in the goal, tools that take a path, and without, tools
    that need none (their path could only be made up). Within each group, tools whose name and description share
    more of the goal's words come first. The kernel's own task-tree and process tools only when the goal speaks of
    tasks. The flag: no choice is left to make (exactly one tool is named or made for the file, or one shares
    clearly more of the goal's words than any other)."""
    low = goal.lower()
    for path in paths:  # the words of the goal, not of the paths it names
        low = low.replace(path.lower(), " ")
    words = {w[:6] for w in re.findall(r"[a-z]{5,}", low)}
    kinds = {os.path.splitext(p.rstrip("/"))[1].lstrip(".").lower() for p in paths}
    internal = ("task.", "proc.")
    usable = {
        n: t
        for n, t in tools.items()
        if (not n.startswith(internal) or "task" in low) and "deprecated" not in str(t.get("description", "")).lower()
    }

    def text_of(name: str) -> str:
        return f"{name} {usable[name].get('description', '')}".lower()

    def takes_path(name: str) -> bool:
        return any(is_path_key(a) for a in _required(usable[name]))

    def path_fits(name: str) -> bool:
        return takes_path(name) == bool(paths)

    def named_by_tool(name: str) -> bool:
        short = name.lower().rpartition(".")[2]
        stems = {w[:6] for w in re.findall(r"[a-z]{5,}", short)}
        by_name = (len(short) > 3 and re.search(rf"\b{re.escape(short)}\b", low) is not None) or bool(stems & words)
        return by_name and path_fits(name)

    def named_by_server(name: str) -> bool:
        server = name.lower().rpartition(".")[0]
        return len(server) > 2 and re.search(rf"\b{re.escape(server)}\b", low) is not None and path_fits(name)

    def made_for(name: str) -> bool:  # takes a path and says the kind of file (or a folder) the goal names
        words = text_of(name).replace("_", " ")  # read_text_file says "text file"
        return takes_path(name) and any(re.search(rf"\b(?:{_KIND_WORDS.get(k, re.escape(k))})", words) for k in kinds)

    def wrong_kind(name: str) -> bool:  # made for another kind of file than any the goal names
        return (
            bool(kinds - {""})
            and not made_for(name)
            and bool(re.search(r"\.(docx|csv|pdf|xlsx|json|md|txt)\b|\b(docx|csv|pdf|xlsx)\b", text_of(name)))
        )

    ranked = [n for n in usable if not wrong_kind(n)]
    score = {n: overlap(goal, text_of(n).replace("_", " ").replace("-", " ")) for n in ranked}

    def by_words(names: list[str]) -> list[str]:
        return sorted(names, key=lambda n: -score[n])  # stable: the catalog's order breaks ties

    by_tool_name = [n for n in ranked if named_by_tool(n)]
    by_server = [n for n in ranked if named_by_server(n)]
    made = [n for n in ranked if made_for(n)]
    if made and kinds - {""}:
        # A file of a kind: the tools made for it first, ranked by what they say (named by the goal, the kind in
        # their own name, the goal's words, a reader's verb); a tool the goal's words name but not made for the
        # file after them ("status" names git_status; the goal names a .docx).
        def rank(n: str) -> tuple[int, int, int, int]:
            short = n.rpartition(".")[2].lower().replace("_", " ").replace("-", " ")
            in_name = any(re.search(rf"\b(?:{_KIND_WORDS.get(k, re.escape(k))})", short) for k in kinds if k)
            reader = re.search(r"\b(?:read|get|cat|show|view|open)\b", short) is not None
            return (int(n in by_tool_name or n in by_server), int(in_name), score[n], int(reader))

        made = sorted(made, key=rank, reverse=True)
        first = list(dict.fromkeys(made + by_words(by_tool_name) + by_words(by_server)))
        names = list(dict.fromkeys(first + by_words([n for n in ranked if takes_path(n)]) + by_words(ranked)))
        return names, len(made) == 1 or rank(made[0]) > rank(made[1])
    first = by_words(by_tool_name) + by_words(by_server) + by_words(made)
    first = list(dict.fromkeys(first))
    fit = by_words([n for n in ranked if takes_path(n) == bool(paths)])
    names = list(dict.fromkeys(first + fit + by_words(ranked)))
    if len(first) == 1 or (len(by_tool_name) == 1 and by_tool_name[0] == names[0]):
        return names, True
    pool = first or fit
    clear = len(pool) >= 1 and score[pool[0]] >= 2 and all(score[n] < score[pool[0]] for n in pool[1:])
    return names, clear


_SPLIT = re.compile(
    r"\s*(?:[;.]\s+(?:then|after that|afterwards|finally|next)\b,?|,?\s*\b(?:and then|then|after that|afterwards|"
    r"finally|next)\b,?|;|\?\s+(?=[^?]+\?)|,?\s+and\s+(?=(?:what|who|whom|which|where|when|how|give|find|get|tell|read|"
    r"take|add|subtract|multiply|divide|compute|calculate|count|list|show|look|search|convert|sum|check)\b)|"
    r",?\s+and\s+(?=the\s+\w+(?:\s+\w+)?\s+(?:in|of|from)\b)|,\s+(?=(?:what|who|which|where|how)\b))\s*",
    re.I,
)
#: Words for the four arithmetic operations, each with the symbol a tool's description writes it with.
_OPERATIONS = {
    "-": (r"minus\b", r"subtract\w*", r"difference\b", r"deduct\w*"),
    "+": (r"plus\b", r"add(?:s|ed|ing)?\b", r"sum of\b", r"increase\w*"),
    "*": (r"times\b", r"multipl\w*", r"product\b", r"double\b", r"triple\b"),
    "/": (r"divid\w*", r"quotient\b", r"ratio\b"),
}


def subgoals(goal: str) -> list[str]:
    """The goal as ordered steps, read off its structure: parts joined by "then", "after that", "finally", a
    semicolon, a second question (not a hint after one: "... code? Look in my memory."), or "and" before a new
    request ("..., and what is ...", "X and the revenue in Y").
    "Add 19 and 23" stays one step: an "and" between values joins the values."""
    parts = [p.strip(" ,.;") for p in _SPLIT.split(goal.strip())]
    parts = [p for p in parts if len(re.findall(r"\w+", p)) >= 2]
    return parts or [goal.strip()]


def refers_back(part: str) -> bool:
    """A step that works on an earlier result ("multiply it by 2", "add 10 to the result") rather than on its own."""
    return bool(re.search(r"\b(?:it|that|this|the result|the answer|the value|the number|them)\b", part, re.I))


def operation_of(text: str) -> str | None:
    """The arithmetic operation ``text`` asks for (``-``, ``+``, ``*``, ``/``), by its words; None if none."""
    low = f" {text.lower()} "
    hits = [(m.start(), op) for op, words in _OPERATIONS.items() for w in words if (m := re.search(rf"\b{w}", low))]
    return min(hits)[1] if hits else None


def matches_operation(part: str, names: list[str], tools: dict[str, dict[str, Any]]) -> list[str]:
    """Of ``names``, those whose name or description says the operation ``part`` asks for (by word or symbol), when
    ``part`` asks for one and only some tools say it; none otherwise (words shared with descriptions at large
    matched the wrong tools: "look in my memory" picked a search tool over the memory one)."""
    texts = {n: f"{n} {tools[n].get('description', '')}".lower() for n in names}
    op = operation_of(part)
    if op is not None:
        words = _OPERATIONS[op]
        said = [
            n
            for n in names
            if any(re.search(rf"\b{w}", texts[n]) for w in words)
            or re.search(rf"\b\w\s*{re.escape(op)}\s*\w\b", texts[n])
        ]
        others = [n for n in said if operation_of(texts[n]) not in (None, op)]
        said = [n for n in said if n not in others] or said
        if said and len(said) < len(names):
            return said
    return []


def operands(part: str, earlier: str) -> list[float] | None:
    """The two numbers an arithmetic step works on, in the order its words put them, when its structure says so:
    "19 and 23", "100 divided by 4", "multiply it by 3" (the earlier result first), "subtract 100 from it" (the
    earlier result first: ``from`` turns the order round). None when the step does not name two values."""
    own = [float(n) for n in numbers_in(part)]
    previous = [float(n) for n in numbers_in(earlier)]
    if refers_back(part) or (len(own) == 1 and len(previous) == 1 and not re.search(r"\bfrom\s+-?\d", part)):
        if len(own) != 1 or len(previous) != 1:
            return None
        return [previous[0], own[0]]
    if re.search(r"\bfrom\b", part, re.I) and operation_of(part) == "-":
        if len(own) == 1 and len(previous) == 1:
            return [previous[0], own[0]]
        return [own[1], own[0]] if len(own) == 2 else None
    return own if len(own) == 2 else None


def string_values(
    tool: dict[str, Any], part: str, goal: str, results: list[str], failed: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """For each required string argument of ``tool`` (not a path, not free text), the values it may take: those a
    failed call's error listed as valid (the one the step's words name, if exactly one does), the step's own words
    for a search query, else values the step and goal name, written the way the argument's name says (a time zone
    for ``timezone``, a time of day for ``time``, looked for in the results too). An optional argument whose name
    says a kind gets the values of that kind the step names (``timezone`` of ``time.now`` for "in Asia/Tokyo")."""
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    options: dict[str, list[str]] = {}
    for step in failed:
        options.update(error_options(step["text"], step["args"]))
    own = string_candidates(part, goal)
    wide = string_candidates(part, goal, *(r[:400] for r in results))
    out: dict[str, list[str]] = {}
    required = list(schema.get("required") or [])
    for name in required + [n for n in props if n not in required]:
        spec = props.get(name) or {}
        kind = _json_type(spec)
        if kind != "string" or is_path_key(name):
            continue
        if name not in required:
            # An optional argument is given only a value of its kind the step itself names ("in Asia/Tokyo").
            named = kind_filtered(name, own)
            if named:
                out[name] = named[:12]
            continue
        if "enum" in spec:
            continue
        if name in options:
            near = [o for o in options[name] if content_stems(o, synonyms=False) & content_stems(part)]
            out[name] = near if len(near) == 1 else options[name]
        elif is_query_key(name):
            out[name] = [query_text(part)]
        elif name.lower() not in FREE_TEXT_KEYS:
            written = kind_filtered(name, wide)
            values = own if written is None else written
            if values:
                out[name] = values[:12]
    return out


def _numbers(*texts: str) -> list[float]:
    return list(dict.fromkeys(float(n) for text in texts for n in numbers_in(text)))[:16]


def checked_answer(goal: str, answer: str, steps: list[dict[str, Any]]) -> str:
    """The answer, checked against the results: a number no result contains is the model's
    guess, so the last number a successful call returned is the answer instead; an empty answer is the last
    successful result (shortened)."""
    good = [s["text"].strip() for s in steps if not s["is_error"] and s["text"].strip()]
    if not good:
        return answer
    if answer_form(goal) == "number":
        # The tools compute, the model does not: the last result that is one number is the answer.
        last = numbers_in(good[-1])
        if len(last) == 1:
            return format_answer(float(last[0]))
        seen = {float(n) for text in good for n in numbers_in(text)}
        try:
            grounded = float(answer) in seen
        except ValueError:
            grounded = False
        if not grounded:
            found = next((numbers_in(t) for t in reversed(good) if numbers_in(t)), [])
            if len(found) == 1:
                return format_answer(float(found[0]))
    if not answer.strip():
        return " ".join(good[-1].split())[:200]
    return answer


class WorkerAgent(Agent):
    manifest = Manifest(
        name="worker",
        description="Call tools one at a time, each chosen from what the last one returned, then answer.",
        capabilities=Capabilities(tools=("*",), llm_token_budget=100_000),
    )
    max_steps = 4
    candidates = 4

    @staticmethod
    def _current(parts: list[str], steps: list[dict[str, Any]], part_of: list[int]) -> int | None:
        """The first sub-goal not done yet: none of its steps succeeded, or it asks for an operation that no
        successful step of it was (the file it names was read, the subtraction is still due); None when all are."""
        for index, part in enumerate(parts):
            mine = [s for s, i in zip(steps, part_of, strict=True) if i == index]
            good = [s for s in mine if not s["is_error"]]
            if len(mine) >= 3 and not good:
                continue  # three failures: give this one up, go on
            if not good:
                return index
            op = operation_of(part)
            if op is not None and len(mine) < 3 and not any(s.get("again") for s in mine):
                if not any(s.get("op") == op for s in good):
                    return index
        return None

    @staticmethod
    def _in_hand(goal: str, steps: list[dict[str, Any]]) -> bool:
        """The answer is in hand: the results hold a fact about the goal, and every value the goal names ("Tokyo",
        "UTC") is in a successful call's arguments or results (a time in UTC does not answer "the time in Tokyo")."""
        good = [s for s in steps if not s["is_error"]]
        if extract_answer(goal, [s["text"] for s in good], answer_form(goal)) is None:
            return False
        seen = " ".join(f"{json.dumps(s['args'])} {s['text']}" for s in good).lower()
        return all(value.lower() in seen for value in named_values(goal))

    @staticmethod
    def _earlier(parts: list[str], current: int, steps: list[dict[str, Any]], part_of: list[int]) -> str:
        """The value an arithmetic step works on besides its own numbers: the number an earlier sub-goal's result
        gives for what that sub-goal asked ("the total cost" of a CSV's stats is its sum), or the number a read
        within this sub-goal gives for what it asks ("the largest cost"); the raw result when no one number is
        about the question, "" when there is nothing before."""
        good = [(s, i) for s, i in zip(steps, part_of, strict=True) if not s["is_error"]]
        if not good:
            return ""
        step, index = good[-1]
        if index == current and (current == 0 or step.get("op") is not None) and not known_paths(parts[current]):
            return ""  # this sub-goal's own arithmetic so far: nothing read for it to work on
        value = extract_number(parts[index], [step["text"]])
        if value is not None:
            return format_answer(value)
        return step["text"][:400] if index < current else ""

    def _context(self, goal: str, steps: list[dict[str, Any]], width: int = 200) -> str:
        done = "\n".join(
            f"{i}. {s['tool']} {json.dumps(s['args'])} -> {'ERROR ' if s['is_error'] else ''}{s['text'][:width]}"
            for i, s in enumerate(steps, 1)
        )
        return f"Task: {goal}" + (f"\n\nResults so far:\n{done}" if done else "")

    async def run(self, ctx: Context, goal: str) -> str | None:
        if not goal.strip():
            await ctx.write("Give the worker a task.\n")
            return None
        await request_named_paths(ctx, goal)  # the folder the task names: asked for, not just denied
        try:
            answer = await self.solve(ctx, goal)
        except AiosError as exc:  # a backend without grammars, a denied tool, a budget spent
            await ctx.write(f"I could not finish: {exc.one_line()}\n")
            return None
        if answer is None:
            return None
        await ctx.write(answer + "\n")
        await ctx.end_turn()
        return answer

    async def solve(self, ctx: Context, goal: str) -> str | None:
        """The goal done step by step: its answer, or None (said why) when no tool it may use fits."""
        steps: list[dict[str, Any]] = []
        parts = subgoals(goal)
        part_of: list[int] = []  # the sub-goal each step worked on
        for _ in range(max(self.max_steps, len(parts) + 2)):
            current = self._current(parts, steps, part_of)
            if current is None and len(parts) == 1 and operation_of(goal) is None:
                if not self._in_hand(goal, steps):
                    current = 0  # one open-ended step, its answer not in hand: the model says when it is done
            if current is None:
                break
            part = parts[current]
            last = [s for s in steps if not s["is_error"]][-1:] if steps else []
            pending = operation_of(part) is not None and any(i == current for i in part_of)
            query = part if not steps or pending else f"{part} {steps[-1]['text'][:200]}"
            found = await ctx.tools.search(query, limit=self.candidates * 3)
            for kind in dict.fromkeys(_file_kind(p) for p in known_paths(part)):
                # The readers of the kind of file the step names, whatever else its words matched.
                seen = {t["name"] for t in found}
                extra = await ctx.tools.search(f"read {kind}", limit=self.candidates)
                found += [t for t in extra if t["name"] not in seen]
            tools = {t["name"]: t for t in found if t.get("side_effect") == "read_only"}
            ok_texts = [s["text"] for s in steps if not s["is_error"]]
            paths = known_paths(part, goal, *ok_texts)[:12]
            mine = known_paths(part) or (known_paths(goal) if len(parts) == 1 or refers_back(part) else [])
            names, obvious = fitting(part, tools, mine or paths)
            preferred = matches_operation(part, names, tools)
            if preferred and operation_of(part) is not None:
                done_ops = {s["tool"] for s, i in zip(steps, part_of, strict=True) if i == current}
                wanted = [n for n in preferred if n not in done_ops] or preferred
                # The operation waits for its input: a step that names a file reads it first.
                if not (known_paths(part) and not any(i == current for i in part_of)) or not any(
                    any(is_path_key(a) for a in _required(tools[n])) for n in names
                ):
                    names, obvious = wanted + [n for n in names if n not in wanted], len(wanted) == 1
            elif preferred:
                names = preferred + [n for n in names if n not in preferred]
            # A tool that failed this sub-goal with nothing to learn from (no list of valid values) goes last: the
            # next one may do (git_show of a made-up revision failed; git_log needs none); the model may still
            # retry it with other arguments.
            dead = {
                x["tool"]
                for x, i in zip(steps, part_of, strict=True)
                if i == current and x["is_error"] and not error_options(x["text"], x["args"])
            }
            names = ([n for n in names if n not in dead] + [n for n in names if n in dead])[: self.candidates]
            obvious = obvious and names[0] not in dead
            if not names:
                break
            context = self._context(goal, steps) + (f"\n\nNow: {part}" if len(parts) > 1 else "")
            listing = "\n".join(f"- {n}: {tools[n].get('description', '')[:120]}" for n in names)
            # Done may be said once this sub-goal has a result; a failure is retried (its error may list values).
            own_good = [x for x, i in zip(steps, part_of, strict=True) if i == current and not x["is_error"]]
            succeeded = bool(own_good)
            op_due = operation_of(part) is not None and not any(x.get("op") == operation_of(part) for x in own_good)
            finished = current == len(parts) - 1 and succeeded and not op_due
            options = names + (["done"] if finished else [])
            stepped = succeeded
            choice = (
                names[0]
                if obvious and (not stepped or (op_due and bool(preferred)))
                else await ctx.llm.choose(
                    f"{context}\n\nTools:\n{listing}\n\nWhich tool is next" + (" (or done)?" if finished else "?"),
                    options,
                    system=SYSTEM,
                )
            )
            if choice == "done":
                break
            earlier = [t[:400] for t in (s["text"] for s in last)]
            numbers = _numbers(*earlier, part, goal, *(t[:400] for t in ok_texts))
            failed = [x for x in steps if x["tool"] == choice and x["is_error"]]
            strings = string_values(tools[choice], part, goal, ok_texts, failed)
            schema = args_schema(tools[choice].get("input_schema") or {}, mine or paths, numbers, strings)
            values = operands(part, self._earlier(parts, current, steps, part_of))
            numeric = [k for k, v in schema["properties"].items() if "enum" in v and set(v["enum"]) <= set(numbers)]
            fixed = fixed_args(schema, f"{part} {goal}")
            if values and operation_of(part) is not None and len(numeric) == len(schema["properties"]) == 2:
                args = dict(zip(numeric, values, strict=True))  # the step's words order the operands
            elif fixed is not None:
                args = fixed  # nothing left to choose: no model call
            else:
                args = await ctx.llm.json(
                    f"{context}\n\nArguments for {choice}: {tools[choice].get('description', '')[:160]}",
                    schema,
                    system=SYSTEM,
                    max_tokens=160,
                )
            args = ground_args(args, mine or paths) if isinstance(args, dict) else {}
            if any(s["tool"] == choice and s["args"] == args and s["is_error"] for s in steps):
                # The same call failed already: it would fail again. Give this sub-goal up.
                part_of.append(current)
                steps.append({**next(s for s in steps if s["tool"] == choice and s["args"] == args), "again": True})
                continue
            if any(s["tool"] == choice and s["args"] == args and not s["is_error"] for s in steps):
                if current == len(parts) - 1:
                    break  # the same call again would tell nothing new: small models loop, the answer is due
                part_of.append(current)  # nothing new for this sub-goal: go on with the next
                steps.append({**next(s for s in steps if s["tool"] == choice and s["args"] == args), "again": True})
                continue
            result = await ctx.tools.call(choice, args)
            op = operation_of(f"{choice.split('.', 1)[-1]} {tools[choice].get('description', '')}")
            steps.append(
                {"tool": choice, "args": args, "is_error": result["is_error"], "text": result["text"], "op": op}
            )
            part_of.append(current)
            mark = "error" if result["is_error"] else "ok"
            await ctx.write(
                f"[{len(steps)}] {choice} {json.dumps(args)} {mark}: {' '.join(result['text'].split())[:200]}\n"
            )
        if not steps:
            await ctx.write("No tool I may use fits this task.\n")
            return None
        separate = len(parts) > 1 and not any(refers_back(p) for p in parts[1:])
        # Parts that do not build on each other are answered each from its own results, then joined.
        asked = [(p, [s for s, i in zip(steps, part_of, strict=True) if i == n]) for n, p in enumerate(parts)]
        asked = [(p, own) for p, own in asked if own] if separate else [(goal, steps)]
        answers = []
        for question, own in asked:
            read = extract_answer(question, [s["text"] for s in own if not s["is_error"]], answer_form(question))
            computed = checked_answer(question, "", own) if answer_form(question) == "number" else ""
            if operation_of(question) is not None and numbers_in(computed) == [computed]:
                answers.append(computed)  # the tools computed it: the last result that is one number
                continue
            if read:
                answers.append(read)  # read off the results: the fact the question is about
                continue
            doc = await ctx.llm.json(
                self._context(question, own, 600) + "\n\nAnswer the task from these results.",
                answer_object(question),
                system=SYSTEM,
            )
            said = format_answer(doc.get("answer", "")) if isinstance(doc, dict) else ""
            answers.append(checked_answer(question, said, own))
        return "; ".join(answers)


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [WorkerAgent]
