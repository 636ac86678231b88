"""The turn rules: what a message's structure decides without the model, and when it defers to the model."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from memory.taskclassify import classify_by_rules, classify_turn


def _step(id: int, title: str, output: str = "") -> dict[str, Any]:
    return {"id": id, "title": title, "output": output}


STEPS = [
    _step(2, "Flight", "to Oslo on June 2"),
    _step(3, "Car rental", "compact car, three days"),
    _step(4, "Packing list", "boots, rain jacket"),
]


@pytest.mark.parametrize(
    ("text", "kind", "node"),
    [
        ("When does the flight leave?", "question", 2),
        ("how long is the car rental", "question", 3),
        ("What does everything look like so far?", "question", None),
        ("Change the flight to June 4.", "update", 2),
        ("Correction: the rental car should be an SUV.", "update", 3),
        ("Actually, drop the packing list.", "update", 4),
        ("Add gloves to the packing list.", "update", 4),
        ("Book a hotel near the harbour.", "new_step", None),
        ("I also need a ferry ticket.", "new_step", None),
        ("Museum tickets for Saturday.", "new_step", None),
    ],
)
def test_structure_decides_kind_and_step(text: str, kind: str, node: int | None) -> None:
    got = classify_by_rules(STEPS, text)
    assert got is not None and got.by == "rule"
    assert (got.kind, got.node) == (kind, node)


def test_a_removal_is_an_update_whose_value_says_removed() -> None:
    got = classify_by_rules(STEPS, "Remove the car rental.")
    assert got is not None and (got.kind, got.node, got.value) == ("update", 3, "removed")


def test_keep_brings_back_a_removed_step() -> None:
    removed = [_step(5, "Umbrella", "one")]
    got = classify_by_rules(STEPS, "Actually, keep the umbrella.", removed=removed)
    assert got is not None and (got.kind, got.node, got.restore) == ("update", 5, True)


def test_a_new_step_for_an_existing_one_goes_under_it() -> None:
    got = classify_by_rules(STEPS, "Book a child seat for the car rental.")
    assert got is not None and (got.kind, got.parent) == ("new_step", 3)
    assert got.title == "Child seat car"


def test_it_refers_to_the_active_step() -> None:
    got = classify_by_rules(STEPS, "Change it to four days.", active=3)
    assert got is not None and (got.kind, got.node) == ("update", 3)


@pytest.mark.parametrize(
    "text",
    [
        "Change it to the blue one.",  # an edit of what? nothing is active, no step named
        "Change the boots and the Oslo part.",  # an edit of two steps equally
        "The car rental has a child seat.",  # a statement about a step: new detail or a change?
    ],
)
def test_ambiguous_text_is_left_to_the_model(text: str) -> None:
    assert classify_by_rules(STEPS, text) is None


@pytest.mark.anyio
async def test_classify_turn_asks_the_model_only_when_the_rules_give_up() -> None:
    calls: list[Any] = []

    async def chat(messages: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["json_schema"])
        yield '{"kind": "update", "node": "n3", "title": "Car rental", "value": "child seat"}'

    with anyio.fail_after(5):
        await _turns(chat, calls)


async def _turns(chat: Any, calls: list[Any]) -> None:
    ruled = await classify_turn(chat, STEPS, "Where is the flight going?")
    assert (ruled.kind, ruled.node, ruled.by) == ("question", 2, "rule") and calls == []
    modelled = await classify_turn(chat, STEPS, "The car rental has a child seat.")
    assert (modelled.kind, modelled.node, modelled.by) == ("update", 3, "model") and len(calls) == 1
    forced = await classify_turn(chat, STEPS, "Where is the flight going?", rules=False)
    assert forced.by == "model" and len(calls) == 2


@pytest.mark.parametrize(
    ("text", "node", "value"),
    [
        ("Change the flight to June 4.", 2, "June 4"),
        ("Correction: the flight is June 5, not June 2.", 2, "June 5"),
        ("Swap the compact car with a van, we are five.", 3, "a van"),
        ("Make the car rental four days.", 3, "four days"),
        ("Add gloves to the packing list.", 4, "boots, rain jacket, gloves"),
        ("Actually, drop the packing list.", 4, "removed"),
    ],
)
def test_an_edit_carries_the_value_the_text_gives(text: str, node: int, value: str) -> None:
    got = classify_by_rules(STEPS, text)
    assert got is not None and (got.kind, got.node, got.value) == ("update", node, value)


def test_an_edit_that_names_no_value_leaves_it_to_the_reply() -> None:
    got = classify_by_rules(STEPS, "Actually, rethink the flight.")
    assert got is not None and (got.kind, got.node, got.value) == ("update", 2, "")


def test_an_edit_naming_two_steps_equally_targets_the_one_named_first() -> None:
    """The target comes before the new value: the value may name another step's title word."""
    steps = [_step(5, "Flour", "a kilo of plain flour"), _step(6, "Bread", "two baguettes")]
    got = classify_by_rules(steps, "Make the flour a bag of bread flour instead.")
    assert got is not None and (got.kind, got.node, got.by) == ("update", 5, "rule")
    got = classify_by_rules(steps, "Make the bread a flour tortilla instead.")
    assert got is not None and (got.kind, got.node) == ("update", 6)
    # Two names joined are two targets: still the model's call.
    assert classify_by_rules(steps, "Change the flour and the bread.") is None
