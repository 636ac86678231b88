"""The scripted dialogues of bench/taskmem: four multi-step conversations of the shapes TME uses.

Each turn has the user's text, its true classification (kind and the step(s) it is about), the scripted tree
operations that file it, the values it makes superseded (or restores), and each dialogue ends with
deterministic checks of the final tree. Ops:

- ``("add", key, title, value, parent_key | None, [dep keys])``
- ``("update", key, value)``
- ``("replace", [old keys], new_key, title, value)`` (a correction or a merge)
- ``("drop", key)`` (removed; its dependents are flagged)
- ``("rollback", key)`` (back to the version before the last change: "actually keep it")
- ``("ask", key | None)`` (a question about a step, or the whole task; changes nothing)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIALOGUES", "Dialogue", "Turn"]

Check = tuple[str, Callable[[Callable[[str], dict[str, Any]], list[dict[str, Any]]], bool]]


@dataclass(frozen=True)
class Turn:
    user: str
    kind: str
    #: The steps the turn is about (any of them counts as right); empty: the whole task / a new step.
    targets: tuple[str, ...]
    ops: tuple[tuple[Any, ...], ...]
    supersedes: tuple[str, ...] = ()
    restores: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialogue:
    name: str
    title: str
    turns: tuple[Turn, ...]
    #: (description, check(node_by_key, live_nodes)) over the final tree.
    checks: tuple[Check, ...] = field(default_factory=tuple)


def _live_titles(live: list[dict[str, Any]]) -> set[str]:
    return {n["title"] for n in live}


TRIP = Dialogue(
    "trip",
    "Plan a weekend trip",
    (
        Turn(
            "I want to plan a weekend trip to Rome.",
            "new_step",
            (),
            (("add", "dest", "Destination", "Rome", None, []),),
        ),
        Turn(
            "We leave on May 3 and come back on May 5.",
            "new_step",
            (),
            (("add", "dates", "Dates", "May 3 to May 5", None, []),),
        ),
        Turn(
            "Find a hotel near the centre, at most 120 euros a night.",
            "new_step",
            (),
            (("add", "hotel", "Hotel", "near the centre, 120 euros a night", None, ["dest", "dates"]),),
        ),
        Turn(
            "Book a table for dinner on the first evening.",
            "new_step",
            (),
            (("add", "dinner", "Dinner", "table on the first evening", None, ["dest", "dates"]),),
        ),
        Turn(
            "I also need travel insurance.",
            "new_step",
            (),
            (("add", "insurance", "Insurance", "travel insurance needed", None, []),),
        ),
        Turn(
            "Correction: the destination is Lisbon, not Rome.",
            "update",
            ("dest",),
            (("update", "dest", "Lisbon"),),
            supersedes=("Rome",),
        ),
        Turn("Where are we staying?", "question", ("hotel",), (("ask", "hotel"),)),
        Turn(
            "Raise the hotel budget to 150 euros a night.",
            "update",
            ("hotel",),
            (("update", "hotel", "near the centre, 150 euros a night"),),
            supersedes=("120 euros",),
        ),
        Turn("What does the whole plan look like now?", "question", (), (("ask", None),)),
    ),
    (
        ("destination is Lisbon", lambda node, live: node("dest")["output"] == "Lisbon"),
        ("hotel budget is 150", lambda node, live: "150 euros" in node("hotel")["output"]),
        (
            "hotel depends on destination and dates",
            lambda node, live: set(node("hotel")["depends_on"]) == {node("dest")["id"], node("dates")["id"]},
        ),
        ("dinner flagged for re-check after the correction", lambda node, live: node("dinner")["needs_recheck"]),
        ("hotel re-checked by its update", lambda node, live: not node("hotel")["needs_recheck"]),
        ("five live steps", lambda node, live: len(live) == 5),
    ),
)

RECIPES = Dialogue(
    "recipes",
    "Cook for Saturday",
    (
        Turn(
            "We need butter for the baking, about 250 grams.",
            "new_step",
            (),
            (("add", "fat", "Baking fat", "butter, 250 g", None, []),),
        ),
        Turn(
            "First recipe: shortbread cookies.",
            "new_step",
            (),
            (("add", "cookies", "Shortbread", "flour, sugar and the baking fat", None, ["fat"]),),
        ),
        Turn(
            "Second recipe: a crumble topping.",
            "new_step",
            (),
            (("add", "crumble", "Crumble", "oats, brown sugar and the baking fat", None, ["fat"]),),
        ),
        Turn(
            "And a tomato salad on the side.",
            "new_step",
            (),
            (("add", "salad", "Tomato salad", "tomatoes and basil", None, []),),
        ),
        Turn(
            "Replace the butter with coconut oil, one guest is vegan.",
            "update",
            ("fat",),
            (("replace", ["fat"], "fat2", "Baking fat", "coconut oil, 200 g"),),
            supersedes=("butter",),
        ),
        Turn("What goes into the shortbread now?", "question", ("cookies",), (("ask", "cookies"),)),
        Turn(
            "Add lemon zest to the crumble.",
            "update",
            ("crumble",),
            (("update", "crumble", "oats, brown sugar, lemon zest and the baking fat"),),
        ),
        Turn("Which fat are we baking with?", "question", ("fat", "fat2"), (("ask", "fat2"),)),
    ),
    (
        ("butter superseded by coconut oil", lambda node, live: node("fat")["superseded_by"] == node("fat2")["id"]),
        (
            "both recipes use the new fat",
            lambda node, live: all(node("fat2")["id"] in node(k)["depends_on"] for k in ("cookies", "crumble")),
        ),
        ("shortbread flagged for re-check", lambda node, live: node("cookies")["needs_recheck"]),
        ("salad untouched", lambda node, live: not node("salad")["needs_recheck"]),
        ("no live step mentions butter", lambda node, live: all("butter" not in n["output"] for n in live)),
        ("crumble has lemon zest", lambda node, live: "lemon zest" in node("crumble")["output"]),
    ),
)

MEETING = Dialogue(
    "meeting",
    "Organise the project review",
    (
        Turn(
            "Schedule the project review on Tuesday at 10:00, two hours.",
            "new_step",
            (),
            (("add", "review", "Project review", "Tuesday 10:00, two hours", None, []),),
        ),
        Turn(
            "Invite Ana, Ben and Chloe.",
            "new_step",
            (),
            (("add", "invitees", "Invitees", "Ana, Ben, Chloe", None, ["review"]),),
        ),
        Turn(
            "Two hours is too long: split it into a design part and a budget part on Wednesday 14:00.",
            "update",
            ("review",),
            (
                ("update", "review", "split into two sessions"),
                ("add", "design", "Design session", "Tuesday 10:00, one hour", "review", []),
                ("add", "budget", "Budget session", "Wednesday 14:00, one hour", "review", []),
            ),
            supersedes=("Tuesday 10:00, two hours",),
        ),
        Turn(
            "Book room 4B for the design session.",
            "new_step",
            ("design",),
            (("add", "room", "Room", "4B", "design", []),),
        ),
        Turn(
            "Actually merge the two sessions back into one on Thursday at 15:00.",
            "update",
            ("design", "budget"),
            (("replace", ["design", "budget"], "merged", "Review session", "Thursday 15:00, two hours"),),
            supersedes=("Tuesday", "Wednesday"),
        ),
        Turn("Who is invited?", "question", ("invitees",), (("ask", "invitees"),)),
        Turn("Add Dara to the invitees.", "update", ("invitees",), (("update", "invitees", "Ana, Ben, Chloe, Dara"),)),
        Turn("When is the review now?", "question", ("merged", "review"), (("ask", "merged"),)),
    ),
    (
        (
            "both sessions merged into one",
            lambda node, live: {node(k)["superseded_by"] for k in ("design", "budget")} == {node("merged")["id"]},
        ),
        (
            "merged session sits under the review",
            lambda node, live: node("merged")["parent_id"] == node("review")["id"],
        ),
        ("room moved under the merged session", lambda node, live: node("room")["parent_id"] == node("merged")["id"]),
        ("Dara invited", lambda node, live: "Dara" in node("invitees")["output"]),
        (
            "no live step on Tuesday or Wednesday",
            lambda node, live: all("Tuesday" not in n["output"] and "Wednesday" not in n["output"] for n in live),
        ),
    ),
)

CART = Dialogue(
    "cart",
    "Weekly grocery order",
    (
        Turn("Add two litres of milk to the cart.", "new_step", (), (("add", "milk", "Milk", "two litres", None, []),)),
        Turn("Add a sourdough loaf.", "new_step", (), (("add", "bread", "Bread", "one sourdough loaf", None, []),)),
        Turn("Put six eggs in too.", "new_step", (), (("add", "eggs", "Eggs", "six", None, []),)),
        Turn(
            "Add a bag of coffee beans.", "new_step", (), (("add", "coffee", "Coffee", "one bag of beans", None, []),)
        ),
        Turn("Remove the bread.", "update", ("bread",), (("drop", "bread"),), supersedes=("sourdough",)),
        Turn("Remove the milk as well.", "update", ("milk",), (("drop", "milk"),), supersedes=("two litres",)),
        Turn("Actually, keep the milk.", "update", ("milk",), (("rollback", "milk"),), restores=("two litres",)),
        Turn("Make the eggs a dozen.", "update", ("eggs",), (("update", "eggs", "a dozen"),), supersedes=("six",)),
        Turn("What is in the cart now?", "question", (), (("ask", None),)),
    ),
    (
        ("cart holds milk, eggs and coffee", lambda node, live: _live_titles(live) == {"Milk", "Eggs", "Coffee"}),
        (
            "milk restored at version 3",
            lambda node, live: (node("milk")["status"], node("milk")["version"]) == ("done", 3),
        ),
        ("bread removed", lambda node, live: node("bread")["status"] == "superseded"),
        ("a dozen eggs", lambda node, live: node("eggs")["output"] == "a dozen"),
    ),
)

DIALOGUES: tuple[Dialogue, ...] = (TRIP, RECIPES, MEETING, CART)
