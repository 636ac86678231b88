"""Filing a user turn into a task tree with ONE grammar-constrained LLM call.

The model sees the live steps (id, title, value) and the message, and must answer with JSON matching a
schema whose ``node`` field is an enum of those ids: a new step, an update of an existing step, or a
question about the state. Applying a question changes nothing; the answer is built from the tree.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
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
    "classify_turn",
    "live_steps",
    "parse_classification",
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

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "node": self.node, "title": self.title, "value": self.value}


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


async def classify_turn(chat: ChatFn, steps: list[dict[str, Any]], text: str) -> Classification:
    """ONE grammar-constrained call; ``chat`` is ``ctx.llm.chat`` (or anything with its signature).

    Raises ``AiosError`` when the backend has no grammars or the answer does not parse.
    """
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


async def apply_classification(call: CallFn, state: dict[str, Any], c: Classification, text: str) -> tuple[int, bool]:
    """File a classified turn through the ``task.*`` syscalls (``call`` is ``ctx.call``).

    ``state`` is the tree as ``task.get`` returned it before the turn. Returns (the step the reply is
    about, whether that step is new and still needs a value). A question changes nothing, not even the
    active step; an update that names no live step is filed as a new step; an update whose value says the
    step is removed supersedes it.
    """
    tree = state["tree"]
    live = {s["id"] for s in live_steps(state)}
    if c.kind == "question":
        return (c.node if c.node is not None and c.node in live else tree["active_id"]), False
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
    )
    return node["id"], not c.value
