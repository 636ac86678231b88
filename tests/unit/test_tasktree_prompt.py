"""Prompt synthesis from the active path (budget, order, no siblings, no superseded values) and turn filing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios.errors import AiosError
from memory.store import Store
from memory.taskclassify import Classification, classification_schema, classify_turn, live_steps, parse_classification
from memory.taskprompt import TaskBudgetError, synthesize
from memory.tasktree import TaskTreeStore


@pytest.fixture
def tasks(tmp_path: Path) -> TaskTreeStore:
    store = Store.open(tmp_path / "aios.db")
    return TaskTreeStore(store.db)


def _trip(tasks: TaskTreeStore) -> dict[str, int]:
    tid = tasks.create_tree(owner="chat", title="Trip to Portugal")["id"]
    ids = {"tree": tid}
    ids["dest"] = tasks.add_node(tid, title="Destination", output="Rome", actor="u")["id"]
    ids["dates"] = tasks.add_node(tid, title="Dates", output="May 3-7", actor="u")["id"]
    ids["food"] = tasks.add_node(tid, title="Restaurants", output="Trattoria Roma", actor="u")["id"]
    ids["hotel"] = tasks.add_node(tid, title="Hotel", depends_on=[ids["dest"], ids["dates"]], actor="u")["id"]
    ids["room"] = tasks.add_node(tid, parent_id=ids["hotel"], title="Room", output="double", actor="u")["id"]
    return ids


def test_prompt_holds_path_and_dependencies_but_no_siblings_or_superseded_values(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    tasks.replace([ids["dest"]], title="Destination", output="Lisbon", actor="u")
    prompt = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"])
    assert prompt.path == [tasks.tree(ids["tree"])["root_id"], ids["hotel"], ids["room"]]
    assert "Lisbon" in prompt.text and "May 3-7" in prompt.text
    assert "Rome" not in prompt.text  # superseded value
    assert "Trattoria" not in prompt.text  # sibling branch
    assert "needs re-check" in prompt.text  # the hotel depended on the replaced destination
    lines = prompt.text.splitlines()
    assert lines[0] == "Task: Trip to Portugal (running)"
    assert lines[1] == "Steps:" and lines[-1] == "Current step: Hotel > Room"
    assert "- Hotel > Room: double [pending]" in lines  # a sub-step is labelled with its path, so order can be free


def _common(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_an_edited_step_moves_to_the_tail_and_the_prefix_before_it_stays(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    before = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    # edit the first step of the slice (the destination, a dependency): every line before it is kept as is
    tasks.update(ids["dest"], output="Naples", actor="u")
    after = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    stable = before.index("- Destination: Rome")
    assert _common(before, after) >= stable and "Rome" not in after
    body = after.splitlines()
    # the edited step and the steps flagged for re-check by it follow every unchanged step
    assert body.index("- Destination: Naples [pending]") > body.index("- Dates: May 3-7 [pending]")
    assert body[-2].startswith("- Hotel") and "needs re-check" in body[-2]
    # a second edit of the same, now last-changed step keeps everything before its line
    tasks.update(ids["room"], output="single", actor="u")
    again = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    assert _common(after, again) >= after.index("- Hotel > Room: double") and "double" not in again


def test_a_correction_by_replace_shares_the_prefix_and_leaks_no_superseded_value(tasks: TaskTreeStore) -> None:
    from kernel.backends.fake import FakeBackend

    ids = _trip(tasks)
    tokenizer = FakeBackend()
    before = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    tasks.replace([ids["dates"]], title="Dates", output="May 10-12", actor="u")
    after = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    assert "May 3-7" not in after and "- Dates: May 10-12\n" in after
    assert _common(before, after) >= before.index("- Dates: May 3-7")
    # token level: only the tail from the first changed line on is new
    old, new = tokenizer.tokenize(before), tokenizer.tokenize(after)
    kept = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), min(len(old), len(new)))
    assert kept >= len(tokenizer.tokenize(before[: before.index("- Dates: May 3-7")]))


def test_a_new_sub_step_only_appends_before_the_current_step_line(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    before = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"]).text
    view = tasks.add_node(ids["tree"], parent_id=ids["room"], title="View", output="sea view", actor="u")["id"]
    after = synthesize(tasks, ids["tree"], budget=500, node_id=view).text
    head = before.rsplit("\nCurrent step:", 1)[0]
    assert after.startswith(head + "\n- Hotel > Room > View: sea view [pending]\nCurrent step: Hotel > Room > View")


def test_a_slice_of_one_step_has_no_current_step_line(tasks: TaskTreeStore) -> None:
    """Every token of the slice is prefilled again when the step changes: a pointer to the only step listed
    would be recomputed each turn for nothing."""
    ids = _trip(tasks)
    alone = synthesize(tasks, ids["tree"], budget=500, node_id=ids["food"]).text
    assert alone.splitlines() == [
        "Task: Trip to Portugal (running)",
        "Steps:",
        "- Restaurants: Trattoria Roma [pending]",
    ]
    with_deps = synthesize(tasks, ids["tree"], budget=500, node_id=ids["hotel"]).text
    assert with_deps.splitlines()[-1] == "Current step: Hotel"  # deps and sub-steps listed too: it says which


def test_budget_too_small_for_the_path_is_a_clear_error_and_deps_are_dropped_first(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    full = synthesize(tasks, ids["tree"], budget=500, node_id=ids["room"])
    with pytest.raises(TaskBudgetError, match="budget of 5 tokens cannot fit the active path"):
        synthesize(tasks, ids["tree"], budget=5, node_id=ids["room"])
    with pytest.raises(TaskBudgetError, match="must be positive"):
        synthesize(tasks, ids["tree"], budget=0)
    path_only = synthesize(tasks, ids["tree"], budget=full.tokens - 8, node_id=ids["room"])
    assert path_only.tokens <= full.tokens - 8
    assert path_only.path == full.path and path_only.omitted


def test_root_question_sees_the_parts(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    root = tasks.tree(ids["tree"])["root_id"]
    prompt = synthesize(tasks, ids["tree"], budget=500, node_id=root)
    assert "- Destination: Rome" in prompt.text and "Room" not in prompt.text


def test_parse_classification_checks_kind_and_node() -> None:
    ok = parse_classification('{"kind": "update", "node": "n4", "title": "Hotel", "value": "Ritz"}', [4, 5])
    assert ok == Classification("update", 4, "Hotel", "Ritz")
    for raw, message in (
        ("not json", "not JSON"),
        ('{"kind": "delete", "node": "none"}', "unknown kind"),
        ('{"kind": "update", "node": "n9"}', "unknown step n9"),
        ("[1]", "not a JSON object"),
    ):
        with pytest.raises(AiosError, match=message):
            parse_classification(raw, [4, 5])
    schema = classification_schema([4, 5])
    assert schema["properties"]["node"]["enum"] == ["n4", "n5", "none"]


@pytest.mark.anyio
async def test_one_call_classifies_against_the_live_steps(tasks: TaskTreeStore) -> None:
    ids = _trip(tasks)
    calls: list[dict[str, Any]] = []

    async def chat(messages: list[dict[str, str]], **kwargs: Any) -> AsyncIterator[str]:
        calls.append({"messages": messages, **kwargs})
        yield json.dumps({"kind": "question", "node": f"n{ids['dates']}", "title": "", "value": ""})

    state = {"tree": tasks.tree(ids["tree"]), "nodes": tasks.nodes(ids["tree"])}
    steps = live_steps(state)
    with anyio.fail_after(5):
        ruled = await classify_turn(chat, steps, "When do we leave?")
        got = await classify_turn(chat, steps, "When do we leave?", rules=False)
    # the rules see a question but no step it names ("leave" is no step's word): the whole task, no call
    assert ruled == Classification("question", None, "", "", by="rule")
    assert got == Classification("question", ids["dates"], "", "")
    assert len(calls) == 1 and calls[0]["json_schema"] == classification_schema([s["id"] for s in steps])
    assert f"n{ids['dest']} Destination: Rome" in calls[0]["messages"][1]["content"]
    assert "Plan" not in calls[0]["messages"][1]["content"]  # the root is the task, not a step


@pytest.mark.anyio
async def test_engines_count_tokens_their_own_way(tmp_path: Path) -> None:
    from kernel.backends.fake import FakeBackend
    from kernel.engine import Engine, EngineClosed
    from kernel.remote_engine import RemoteEngine
    from memory.taskprompt import estimate_tokens

    text = "Task: Plan a trip (running)"
    remote = RemoteEngine("http://127.0.0.1:9/v1")  # never started: counting needs no server
    assert remote.exact_token_count is False
    assert remote.count_tokens(text) == estimate_tokens(text) == 9 and remote.count_tokens("") == 0
    backend = FakeBackend()
    engine = Engine(backend, swap_dir=tmp_path / "swap")
    engine.start()
    assert engine.exact_token_count is True
    assert engine.count_tokens(text) == len(backend.tokenize(text)) == 5 and engine.count_tokens("") == 0
    with anyio.fail_after(10):
        await engine.aclose()
    with pytest.raises(EngineClosed):  # the runtime is freed after aclose: counting is refused, not attempted
        engine.count_tokens(text)
