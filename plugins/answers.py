"""The form a goal asks its answer in, as a JSON schema: a number, yes or no, a path, or a short text.

A small model asked "how many rows does the CSV have?" answers with a sentence; constrained to
``{"answer": number}`` it answers with the number. The form is read off the goal the way a person reads it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["answer_form", "answer_schema", "format_answer"]

_NUMBER = re.compile(
    r"\bhow (?:many|much|long|old|far|big|large)\b|\b(?:number of|count|total|sum|average|mean|percentage|"
    r"how many)\b|\bwhat (?:is|was) the (?:number|count|total|sum|average|value)\b|"
    r"\b(?:plus|minus|times|multipl(?:y|ied)|divided?|subtract|add)\b.*\d|\d.*\b(?:plus|minus|times|multipl(?:y|ied)|"
    r"divided?|subtract)\b|\bwhat year\b",
    re.I,
)
_YES_NO = re.compile(r"^\s*(?:is|are|was|were|does|do|did|can|could|has|have|had|will|should)\b", re.I)
_TWO_THINGS = re.compile(
    r",\s*and\s+(?:what|who|which|where|when|how|give|find|tell|the)\b|\band the \w+(?: \w+)? (?:in|of|from)\b|\?.+\?",
    re.I,
)
_PATH = re.compile(r"\b(?:which|what) (?:file|path|folder|directory|document)\b", re.I)


def answer_form(goal: str) -> str:
    """``number``, ``yes_no``, ``path`` or ``text``; a goal that asks for two things (``X, and Y``) gets text."""
    if _TWO_THINGS.search(goal):
        return "text"
    if _NUMBER.search(goal):
        return "number"
    if _YES_NO.match(goal):
        return "yes_no"
    if _PATH.search(goal):
        return "path"
    return "text"


def answer_schema(goal: str) -> dict[str, Any]:
    """The schema of the ``answer`` property for ``goal``."""
    form = answer_form(goal)
    if form == "number":
        return {"type": "number"}
    if form == "yes_no":
        return {"enum": ["yes", "no"]}
    if form == "path":
        return {"type": "string", "maxLength": 300}
    return {"type": "string", "maxLength": 200}


def format_answer(value: Any) -> str:
    """A number without a needless ``.0``; anything else as text."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
