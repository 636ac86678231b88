"""Filing a user turn into a task tree: structure first, ONE grammar-constrained LLM call only where it must.

``classify_by_rules`` decides what the text itself says, the way a person reads it: a question mark or a
leading question word is a question; an edit verb ("change", "replace", "remove", "actually", "correction",
"make the X Y", "add X to the Y") names an update of the step it refers to; a creation verb or a plain
statement that refers to no step is a new step. A step is "referred to" when the message shares a content
word (or its stem) with the step's title or value; "it"/"that" refer to the active step. When the text is
ambiguous (an edit that refers to no step, or to several equally) the rules give up and ``classify_turn``
asks the model: it sees the live steps (id, title, value) and the message and must answer with JSON matching
a schema whose ``node`` field is an enum of those ids. Applying a question changes nothing.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aios.errors import AiosError

__all__ = [
    "REMOVED_VALUES",
    "TURN_KINDS",
    "Classification",
    "TurnKind",
    "apply_classification",
    "classification_messages",
    "classification_schema",
    "classify_by_rules",
    "classify_turn",
    "live_steps",
    "new_value",
    "parse_classification",
    "removed_steps",
]

log = logging.getLogger(__name__)

TurnKind = Literal["new_step", "update", "question"]
TURN_KINDS: tuple[str, ...] = ("new_step", "update", "question")
MAX_TITLE = 40
MAX_VALUE = 80

ChatFn = Callable[..., AsyncIterator[str]]
CallFn = Callable[..., Awaitable[Any]]

#: Values an update may give a step to say it is removed (it is then superseded, not rewritten).
REMOVED_VALUES = frozenset({"removed", "remove", "deleted", "delete", "none"})

_SYSTEM = (
    "You sort a user's message into their task list. Reply with JSON.\n"
    'kind "new_step": the message adds a new item or step; node "none".\n'
    'kind "update": the message changes, corrects, replaces, removes or keeps an existing step; node is its id.\n'
    'kind "question": the message asks something (what, where, which, who, when?); node is the step it asks '
    'about, or "none" for the whole list.\n'
    'title: a short name for the step. value: its new value, or "".\n'
    "Examples, with the step n4 Rice: one bag\n"
    '"Add two apples." -> {"kind": "new_step", "node": "none", "title": "Apples", "value": "two"}\n'
    '"Actually make the rice two bags." -> {"kind": "update", "node": "n4", "title": "Rice", "value": "two bags"}\n'
    '"Remove the rice." -> {"kind": "update", "node": "n4", "title": "Rice", "value": "removed"}\n'
    '"Which rice did we pick?" -> {"kind": "question", "node": "n4", "title": "Rice", "value": ""}'
)


@dataclass(frozen=True)
class Classification:
    kind: TurnKind
    node: int | None
    title: str
    value: str
    #: Who decided: "rule" (the text's structure), "model" (one LLM call) or "fallback" (neither could).
    by: str = "model"
    #: For a new step: the existing step it belongs under (``Book a room for the design session``).
    parent: int | None = None
    #: For an update of a removed step: bring it back ("keep the milk after all").
    restore: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "node": self.node,
            "title": self.title,
            "value": self.value,
            "by": self.by,
            "parent": self.parent,
            "restore": self.restore,
        }


# -- rules: what the text's structure decides ---------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_QUESTION_WORDS = frozenset(
    "what where which who whom whose when why how is are was were do does did can could should would will "
    "shall may have has".split()
)
#: Verbs (and markers) that change something already there.
_EDIT = frozenset(
    "actually correction correct change changed replace swap switch remove delete drop cancel undo raise lower "
    "increase decrease reduce extend shorten rename move merge split postpone reschedule update instead "
    "rather keep restore fix make set".split()
)
#: Markers that bring a removed step back.
_RESTORE = frozenset("keep restore undo back".split())
_REMOVE = frozenset("remove delete drop cancel".split())
#: Verbs that start something new (a new step, possibly under an existing one).
_CREATE = frozenset(
    "add book find buy get need want plan schedule invite put include create start order reserve call email "
    "write also new first second third next then".split()
)
#: Words that refer to the whole task, not one step.
_WHOLE = frozenset("whole everything all overall total list plan summary status now so far".split())
_PRONOUNS = frozenset("it that this them those these".split())
_STOP = frozenset(
    "a an the and or but of to in on at for with by from as is are be was were it its this that these those "
    "i we you me us my our your they them their he she his her not no yes please also too now then so just "
    "into onto about one two some any all up down out off over more less much many very can will would "
    "should could do does did have has had let lets get got make made put set want need like back well "
    "instead actually rather each per".split()
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _stem(word: str) -> str:
    """A crude stem, enough to tie "invited"/"invitees", "sessions"/"session", "baking"/"bake"."""
    for suffix in ("ations", "ation", "ings", "ing", "ees", "ies", "ers", "ed", "es", "er", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in _words(text) if w not in _STOP and len(w) > 2 and not w.isdigit()}


def _references(steps: list[dict[str, Any]], words: set[str]) -> list[tuple[float, dict[str, Any]]]:
    """Steps the message refers to, best first: a shared title word counts twice a shared value word."""
    scored = []
    for step in steps:
        title = _content(step["title"])
        value = _content(step.get("output") or "")
        score = 2.0 * len(words & title) + len(words & (value - title))
        if score:
            scored.append((score, step))
    # Ties go to the newest step: it is the one the conversation is most likely about.
    scored.sort(key=lambda pair: (pair[0], pair[1]["id"]), reverse=True)
    return scored


def _title_for(text: str) -> str:
    words = [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9'-]*", text) if w.lower() not in _STOP]
    words = [w for w in words if w.lower() not in _CREATE] or words
    return " ".join(words[:3]).capitalize()[:MAX_TITLE] or "Step"


def classify_by_rules(
    steps: list[dict[str, Any]],
    text: str,
    *,
    removed: Sequence[dict[str, Any]] = (),
    active: int | None = None,
) -> Classification | None:
    """Classify ``text`` from its structure alone, or ``None`` when only the model can tell.

    ``steps`` are the live steps, ``removed`` the superseded ones (a "keep the milk after all" may bring one
    back), ``active`` the step the conversation is on (what "it" refers to).
    """
    words = _words(text)
    if not words:
        return None
    first = words[0]
    content = _content(text)
    refs = _references(steps, content)
    # -- a question: its mark, or a leading question word (and no edit verb leading it)
    if text.rstrip().endswith("?") or (first in _QUESTION_WORDS and first not in ("do", "can", "will")):
        if content & {_stem(w) for w in _WHOLE} and not (refs and refs[0][0] >= 2):
            return Classification("question", None, "", "", by="rule")
        node = refs[0][1]["id"] if refs and (len(refs) == 1 or refs[0][0] > refs[1][0]) else None
        if node is None and refs and refs[0][0] == refs[1][0]:
            node = refs[0][1]["id"]  # equally good matches: the newest, as above
        return Classification("question", node, "", "", by="rule")
    lead = set(words[:3])
    edit = (
        bool(lead & _EDIT)
        or bool(set(words) & {"correction", "instead", "actually"})
        or any(w in _EDIT and nxt in _PRONOUNS for w, nxt in itertools.pairwise(words))
    )
    # "Add lemon zest to the crumble": adding to an existing step changes that step.
    into = re.search(r"\b(?:to|into|onto)\s+(?:the|my|our)\s+([a-z][a-z\s-]{0,40})", text.lower())
    if first in ("add", "put", "include") and into and steps:
        target = _references(steps, _content(into.group(1)))
        if target:
            step = target[0][1]
            added = text[len(first) : into.start()].strip(" ,.")
            old = (step.get("output") or "").strip()
            value = f"{old}, {added}" if old and added else added
            return Classification("update", step["id"], step["title"], value[:MAX_VALUE], by="rule")
    if edit:
        if lead & _RESTORE and removed:
            back = _references(list(removed), content)
            if back and not (refs and refs[0][0] > back[0][0]):
                return Classification("update", back[0][1]["id"], back[0][1]["title"], "", by="rule", restore=True)
        named = refs[0][1] if refs and (len(refs) == 1 or refs[0][0] > refs[1][0] or _merge(words)) else None
        if named is None and refs:
            named = _named_first(refs, words)
        if named is not None:
            value = "removed" if lead & _REMOVE else new_value(text, named)
            return Classification("update", named["id"], named["title"], value, by="rule")
        if not refs and set(words) & _PRONOUNS and active is not None and any(s["id"] == active for s in steps):
            step = next(s for s in steps if s["id"] == active)
            return Classification("update", active, step["title"], new_value(text, step), by="rule")
        return None  # an edit of what? only the model can tell
    if first in _CREATE or not refs:
        parent = refs[0][1]["id"] if refs and first in _CREATE else None
        return Classification("new_step", None, _title_for(text), "", by="rule", parent=parent)
    return None  # a statement about an existing step: new detail or a change? the model decides


_VALUE_PATTERNS = (
    # "replace the butter with coconut oil, ..."
    re.compile(r"\b(?:replace|swap|substitute)\b.+?\b(?:with|by|for)\s+(?P<v>[^,.;:!?]+)", re.I),
    # "raise the budget to 150 euros a night" / "change the flight to June 4"
    re.compile(
        r"\b(?:change|set|raise|lower|increase|decrease|reduce|extend|shorten|move|reschedule|postpone|"
        r"update|switch|push|bring)\b.*?\bto\s+(?P<v>[^;:!?]+?)[.!]?$",
        re.I,
    ),
    # "not Rome, Lisbon" / "not Rome but Lisbon"
    re.compile(r"^\s*not\s+[^,]+?(?:,|\s+but)\s+(?P<v>[^,.;:!?]+)", re.I),
    # "Lisbon instead"
    re.compile(r"^(?:make it\s+|use\s+|go with\s+)?(?P<v>[^,.;:!?]+?)\s+instead\b", re.I),
)
#: "the destination is Lisbon, not Rome": only when what comes before "is" names the step.
_IS_VALUE = re.compile(
    r"^(?P<subject>[^,.;:!?]*?)\b(?:is|are|'s)\s+(?:now\s+)?(?P<v>[^,.;:!?]+?)(?:\s+now)?(?:,|\.|!|$)", re.I
)


def new_value(text: str, step: dict[str, Any]) -> str:
    """The value an edit gives ``step``, read off the text ("is Lisbon, not Rome", "to 150 euros", "with
    coconut oil", "make the eggs a dozen"); "" when the text does not say (the model's reply fills it)."""
    body = re.sub(r"^\s*(?:correction|actually|no|sorry|oh)\b[\s:,]*", "", text.strip(), flags=re.I)
    for pattern in _VALUE_PATTERNS:
        found = pattern.search(body)
        if found:
            return found.group("v").strip(" ,.")[:MAX_VALUE]
    said = _IS_VALUE.search(body)
    if said and _content(said.group("subject")) & _content(step["title"]):
        return said.group("v").strip(" ,.")[:MAX_VALUE]
    made = re.match(r"^(?:please\s+)?make\s+(?:the\s+|it\s+|them\s+)?(?P<rest>.+?)[.!]?$", body, re.I)
    if made:
        # "make the eggs a dozen": what follows the words that name the step
        named = _content(step["title"])
        rest = made.group("rest").split()
        while rest and (_stem(rest[0].lower().strip(",")) in named or rest[0].lower() in _STOP - {"a", "an", "one"}):
            rest.pop(0)
        return " ".join(rest).strip(" ,.")[:MAX_VALUE]
    return ""


_JOINS = frozenset("and or both".split())


def _named_first(refs: list[tuple[float, dict[str, Any]]], words: list[str]) -> dict[str, Any] | None:
    """Among equally good matches of an edit, the step whose title it names first: an edit names its target
    before the new value ("make the flour a bag of bread flour": Flour, not Bread). None when no title is
    named, two are named at once, or the names are joined ("change the flight and the car": two targets)."""
    stems = [_stem(w) for w in words]
    tied = [step for score, step in refs if score == refs[0][0]]

    def first(step: dict[str, Any]) -> int:
        title = _content(step["title"])
        return next((i for i, w in enumerate(stems) if w in title), len(stems))

    ranked = sorted(tied, key=first)
    at, after = first(ranked[0]), first(ranked[1])
    if at >= after or at == len(stems) or _JOINS & set(words[at:after]):
        return None
    return ranked[0]


def _merge(words: list[str]) -> bool:
    return bool({"merge", "combine", "join", "both"} & set(words))


def classification_schema(node_ids: list[int]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "kind": {"enum": list(TURN_KINDS)},
            "node": {"enum": [f"n{i}" for i in node_ids] + ["none"]},
            "title": {"type": "string", "maxLength": MAX_TITLE},
            "value": {"type": "string", "maxLength": MAX_VALUE},
        },
        "required": ["kind", "node", "title", "value"],
    }


def classification_messages(steps: list[dict[str, Any]], text: str) -> list[dict[str, str]]:
    listing = "\n".join(f"n{s['id']} {s['title']}: {s['output'] or '-'}" for s in steps) or "(no steps yet)"
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"Steps:\n{listing}\n\nMessage: {text}"},
    ]


def parse_classification(raw: str, node_ids: list[int]) -> Classification:
    """Parse the model's JSON; a node id outside the tree or a malformed answer is an ``AiosError``."""
    try:
        data = json.loads(raw, strict=False)  # a control character inside a string is no reason to fail
    except json.JSONDecodeError as exc:
        raise AiosError(f"turn classification is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AiosError("turn classification is not a JSON object")
    kind = data.get("kind")
    if kind not in TURN_KINDS:
        raise AiosError(f"turn classification has an unknown kind {kind!r}")
    node_ref = str(data.get("node", "none"))
    node: int | None = None
    if node_ref != "none":
        try:
            node = int(node_ref.removeprefix("n"))
        except ValueError:
            raise AiosError(f"turn classification names no step: {node_ref!r}") from None
        if node not in node_ids:
            raise AiosError(f"turn classification names an unknown step {node_ref}")
    title = str(data.get("title", "")).strip()[:MAX_TITLE]
    value = str(data.get("value", "")).strip()[:MAX_VALUE]
    return Classification(kind, node, title, value)


async def classify_turn(
    chat: ChatFn,
    steps: list[dict[str, Any]],
    text: str,
    *,
    removed: Sequence[dict[str, Any]] = (),
    active: int | None = None,
    rules: bool = True,
) -> Classification:
    """The rules' answer when they have one, else ONE grammar-constrained call (``chat`` is ``ctx.llm.chat``
    or anything with its signature). Raises ``AiosError`` when the backend has no grammars or the answer
    does not parse.
    """
    if rules:
        decided = classify_by_rules(steps, text, removed=removed, active=active)
        if decided is not None:
            return decided
    ids = [s["id"] for s in steps]
    pieces = [
        p
        async for p in chat(
            classification_messages(steps, text),
            json_schema=classification_schema(ids),
            max_tokens=100,
            temperature=0.0,
        )
    ]
    return parse_classification("".join(pieces), ids)


def live_steps(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a ``task.get`` answer a turn can be about: not superseded, not the root."""
    root = state["tree"]["root_id"]
    return [n for n in state["nodes"] if n["status"] != "superseded" and n["id"] != root]


def removed_steps(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps dropped without a replacement (a turn may bring one back)."""
    return [n for n in state["nodes"] if n["status"] == "superseded" and not n.get("superseded_by")]


async def apply_classification(call: CallFn, state: dict[str, Any], c: Classification, text: str) -> tuple[int, bool]:
    """File a classified turn through the ``task.*`` syscalls (``call`` is ``ctx.call``).

    ``state`` is the tree as ``task.get`` returned it before the turn. Returns (the step the reply is
    about, whether that step is new and still needs a value). A question changes nothing, not even the
    active step; it is about the step it names, or the whole task (the root, whose slice lists every live
    step) when it names none; an update that names no live step is filed as a new step; an update whose
    value says the step is removed supersedes it.
    """
    tree = state["tree"]
    live = {s["id"] for s in live_steps(state)}
    if c.kind == "question":
        return (c.node if c.node is not None and c.node in live else tree["root_id"]), False
    if c.kind == "update" and c.restore and c.node is not None and c.node not in live:
        versions = [n["version"] for n in state["nodes"] if n["id"] == c.node]
        if versions and versions[0] > 1:
            await call("task.rollback", tree=tree["id"], node=c.node, version=versions[0] - 1)
            await call("task.activate", tree=tree["id"], node=c.node)
            return c.node, False
    if c.kind == "update" and c.node is not None and c.node in live:
        if c.value.lower() in REMOVED_VALUES:
            await call("task.supersede", tree=tree["id"], node=c.node)
            return tree["root_id"], False
        await call("task.update", tree=tree["id"], node=c.node, output=c.value or None)
        await call("task.activate", tree=tree["id"], node=c.node)
        return c.node, False
    node = await call(
        "task.add",
        tree=tree["id"],
        title=c.title or text.strip()[:MAX_TITLE] or "step",
        input=text,
        output=c.value,
        status="done" if c.value else "running",
        **({"parent": c.parent} if c.parent is not None and c.parent in live else {}),
    )
    return node["id"], not c.value
