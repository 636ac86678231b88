"""The summarizer and supervisor built-in agents: through a real kernel on the fake backend where the backend
allows it, over a scripted runner context where they need a grammar the fake does not have."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aios.config import Config
from aios.errors import PermissionDenied
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store
from plugins.summarizer import SummarizerAgent
from plugins.supervisor import CHILDREN, SupervisorAgent
from plugins.worker import WorkerAgent, args_schema

pytestmark = pytest.mark.anyio


class Runner:
    """A runner's context: scripted replies to ``llm.chat`` and to syscalls, every call recorded."""

    pid, name, interactive = 5, "runner", False

    def __init__(self, replies: list[str], answers: dict[str, Any]) -> None:
        self.replies, self.answers = replies, answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.out: list[str] = []
        self.llm = self

    def chat(self, messages: Any, **kwargs: Any) -> AsyncIterator[str]:
        reply = self.replies.pop(0)

        async def stream() -> AsyncIterator[str]:
            yield reply

        return stream()

    async def call(self, syscall: str, **payload: Any) -> Any:
        self.calls.append((syscall, payload))
        answer = self.answers[syscall]
        result = answer(payload) if callable(answer) else answer
        if isinstance(result, Exception):
            raise result
        return result

    async def write(self, text: str) -> None:
        self.out.append(text)

    async def end_turn(self) -> None:
        pass

    async def input(self) -> str | None:
        return None


async def test_supervisor_on_the_fake_backend_runs_the_goal_as_one_narrowed_child(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(20):
            async with open_kernel(
                Config(), runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False)
            ) as kernel:
                pid = await kernel.spawn("supervisor", "say hello")
                info = await kernel.wait(pid)
                (child,) = [p for p in kernel.ps() if p["ppid"] == pid]  # every process of this boot
                assert child["agent"] == "chat"
                child_pid = child["pid"]
                caps = kernel.process(child_pid).caps
    finally:
        store.close()
    assert info["state"] == "exited", info.get("error")
    assert info["result"].startswith("1. say hello: ")  # the fake has no grammar: one part, for chat
    assert caps.tools == () and caps.files_read == () and caps.max_children == 0


async def test_supervisor_splits_spawns_narrowed_children_at_once_and_merges() -> None:
    parts = {"parts": [{"agent": "planner", "goal": "time in Tokyo"}, {"agent": "summarizer", "goal": "~/notes"}]}
    waited: list[int] = []

    def wait(payload: dict[str, Any]) -> dict[str, Any]:
        waited.append(payload["pid"])
        return (
            {"state": "exited", "result": f"answer {payload['pid']}"}
            if payload["pid"] == 11
            else {
                "state": "failed",
                "error": "RuntimeError: boom",
            }
        )

    spawned = iter([11, 12])
    runner = Runner([json.dumps(parts)], {"proc.spawn": lambda p: {"pid": next(spawned)}, "proc.wait": wait})
    with anyio.fail_after(5):
        merged = await SupervisorAgent().run(runner, "what time is it in Tokyo, and summarise my notes")
    spawns = [p for name, p in runner.calls if name == "proc.spawn"]
    assert [(s["agent"], s["goal"]) for s in spawns] == [("planner", "time in Tokyo"), ("summarizer", "~/notes")]
    assert [s["caps"] for s in spawns] == [CHILDREN["planner"], CHILDREN["summarizer"]]
    assert sorted(waited) == [11, 12]
    assert merged == "1. time in Tokyo: answer 11\n2. ~/notes: (failed: RuntimeError: boom)"


async def test_supervisor_reports_a_child_it_may_not_start() -> None:
    runner = Runner(
        ['{"parts": [{"agent": "chat", "goal": "hi"}]}'],
        {"proc.spawn": PermissionDenied("proc.spawn by pid 5 (runner): no children allowed")},
    )
    with anyio.fail_after(5):
        merged = await SupervisorAgent().run(runner, "hi")
    assert merged == "1. hi: (failed: proc.spawn by pid 5 (runner): no children allowed)"


async def test_summarizer_summarises_a_path_or_the_files_words_find() -> None:
    def summarize(payload: dict[str, Any]) -> Any:
        if payload["target"].endswith("locked.md"):
            return PermissionDenied("fs.summarize: not granted")
        return {"summary": f"about {Path(payload['target']).stem}"}

    hits = {"results": [{"path": "/n/backup.md"}, {"path": "/n/locked.md"}, {"path": "/n/restore.md"}]}
    runner = Runner([], {"fs.search": hits, "fs.summarize": summarize})
    with anyio.fail_after(5):
        found = await SummarizerAgent().run(runner, "notes about backups")
        direct = await SummarizerAgent().run(runner, "~/notes/plan.md")
    assert found == "/n/backup.md: about backup\n/n/restore.md: about restore"
    assert any("locked.md" in line and "not granted" in line for line in runner.out)
    assert direct == "~/notes/plan.md: about plan"
    assert runner.calls[0] == ("fs.search", {"query": "notes about backups", "k": 3})


TOOLS = {
    "tools": [
        {
            "name": "clock.now",
            "side_effect": "read_only",
            "description": "The time in a timezone.",
            "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
        },
        {"name": "fs.delete", "side_effect": "destructive", "description": "Delete a file.", "input_schema": {}},
        {
            "name": "clock.convert",
            "side_effect": "read_only",
            "description": "Convert a time to another timezone.",
            "input_schema": {
                "type": "object",
                "properties": {"time": {"type": "string"}, "to": {"enum": ["UTC", "JST"]}, "fmt": {"type": "string"}},
                "required": ["time", "to"],
            },
        },
    ]
}


async def test_worker_calls_one_tool_at_a_time_each_from_the_last_result() -> None:
    results = iter(
        [
            {"is_error": True, "text": "unknown timezone 'Tokio'"},
            {"is_error": False, "text": "2026-12-04T23:00Z"},
            {"is_error": False, "text": "08:00 JST"},
        ]
    )
    runner = Runner(
        [
            '{"choice": "clock.now"}',
            '{"tz": "Tokio"}',
            '{"choice": "clock.now"}',  # the error is shown at the next step: it retries differently
            '{"tz": "UTC"}',
            '{"choice": "clock.convert"}',
            '{"time": "2026-12-04T23:00Z", "to": "JST"}',
            '{"choice": "done"}',
            '{"answer": "08:00"}',
        ],
        {"tool.search": TOOLS, "tool.call": lambda p: next(results)},
    )
    with anyio.fail_after(5):
        answer = await WorkerAgent().run(runner, "what time is it in Tokyo?")
    assert answer == "08:00"
    called = [(p["tool"], p["args"]) for name, p in runner.calls if name == "tool.call"]
    assert called == [
        ("clock.now", {"tz": "Tokio"}),
        ("clock.now", {"tz": "UTC"}),
        ("clock.convert", {"time": "2026-12-04T23:00Z", "to": "JST"}),
    ]
    searches = [p["query"] for name, p in runner.calls if name == "tool.search"]
    assert searches[0] == "what time is it in Tokyo?" and "2026-12-04T23:00Z" in searches[2]
    assert "fs.delete" not in "".join(runner.out)  # only read-only tools are offered


def test_worker_argument_schema_keeps_required_simple_fields() -> None:
    schema = args_schema(TOOLS["tools"][2]["input_schema"])
    assert schema["required"] == ["time", "to"] and schema["properties"]["to"] == {"enum": ["UTC", "JST"]}
    assert schema["additionalProperties"] is False


async def test_worker_on_the_fake_backend_says_why_it_cannot_finish(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(20):
            async with open_kernel(
                Config(), runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False)
            ) as kernel:
                pid = await kernel.spawn("worker", "what time is it?")
                info = await kernel.wait(pid)
        output = "".join(m["content"] for m in store.messages(pid) if m["role"] == "assistant")
    finally:
        store.close()
    assert info["state"] == "exited", info.get("error")  # it fails alone, with a reason, not a traceback
    assert output.startswith(("No tool I may use fits this task.", "I could not finish: "))


async def test_supervisor_drops_parts_that_are_not_about_the_goal() -> None:
    noise = {"parts": [{"agent": "summarizer", "goal": "2018-04-30 }, {"}, {"agent": "chat", "goal": "a sea haiku"}]}
    runner = Runner([json.dumps(noise)], {"proc.spawn": {"pid": 9}, "proc.wait": {"state": "exited", "result": "ok"}})
    with anyio.fail_after(5):
        merged = await SupervisorAgent().run(runner, "Write a haiku about the sea")
    assert merged == "1. a sea haiku: ok"
    noise_only = Runner(['{"parts": [{"agent": "chat", "goal": "}, {"}]}'], runner.answers)
    with anyio.fail_after(5):
        assert await SupervisorAgent().run(noise_only, "Write a haiku") == "1. Write a haiku: ok"


async def test_worker_stops_instead_of_repeating_a_call_that_succeeded() -> None:
    # The time zone is copied from the goal (the only value written like one), so only the choices are asked; the
    # result holds no fact about the question, so the model is asked to go on, picks the same call, and is stopped.
    runner = Runner(
        ['{"choice": "clock.now"}', '{"choice": "clock.now"}', '{"answer": "noon"}'],
        {"tool.search": TOOLS, "tool.call": {"is_error": False, "text": "noon"}},
    )
    with anyio.fail_after(5):
        assert await WorkerAgent().run(runner, "time in UTC?") == "noon"
    assert [p["args"] for name, p in runner.calls if name == "tool.call"] == [{"tz": "UTC"}]
    assert not runner.replies


async def test_worker_stops_when_the_results_answer_the_goal() -> None:
    runner = Runner(
        ['{"choice": "clock.now"}'], {"tool.search": TOOLS, "tool.call": {"is_error": False, "text": "23:00Z"}}
    )
    with anyio.fail_after(5):
        assert await WorkerAgent().run(runner, "time in UTC?") == "23:00"  # read off the result: no model answer
    assert not runner.replies


async def test_worker_does_not_repeat_a_call_that_failed_and_retries_with_the_values_the_error_lists() -> None:
    stats = {
        "name": "docs.column_stats",
        "side_effect": "read_only",
        "description": "Statistics of one column of a CSV file: count, sum (total), mean, min, max.",
        "input_schema": {
            "properties": {"path": {"type": "string"}, "column": {"type": "string"}},
            "required": ["path", "column"],
        },
    }

    def call(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["args"]["column"] != "cost":
            return {"is_error": True, "text": f"no column {payload['args']['column']!r} (columns: item, cost)"}
        return {"is_error": False, "text": "count=4 sum=1800 mean=450 min=70 max=1200"}

    runner = Runner(
        [],
        {
            "tool.search": {"tools": [stats]},
            "tool.call": call,
            "proc.request": {"granted": True},
        },
    )
    with anyio.fail_after(5):
        answer = await WorkerAgent().run(runner, "What is the total of the costs in /d/budget.csv?")
    called = [p["args"]["column"] for name, p in runner.calls if name == "tool.call"]
    # The first value is the goal's one word that can be a value ("total" says what to do with one); the error's
    # list, matched with the goal's words, decides the second; the answer is the sum (what "total" means) read off
    # the stats. Nothing is asked of the model, and the failed call is not made again.
    assert called == ["costs", "cost"] and answer == "1800"
    assert not runner.replies


@pytest.mark.parametrize(
    ("goal", "form"),
    [
        ("How many rows does data.csv have?", "number"),
        ("What is the total of the amount column?", "number"),
        ("Is the repository clean?", "yes_no"),
        ("Which file mentions the budget?", "path"),
        ("Who wrote the last commit?", "text"),
    ],
)
def test_the_answer_takes_the_form_the_goal_asks_for(goal: str, form: str) -> None:
    from plugins.answers import answer_form

    assert answer_form(goal) == form


async def test_worker_answers_a_number_when_the_goal_asks_for_one() -> None:
    runner = Runner(
        ['{"choice": "clock.now"}', '{"tz": "UTC"}', '{"choice": "done"}', '{"answer": 42.0}'],
        {"tool.search": TOOLS, "tool.call": {"is_error": False, "text": "42"}},  # no word of the question: asked
    )
    schemas: list[Any] = []
    chat = runner.chat

    def recording(messages: Any, **kwargs: Any) -> AsyncIterator[str]:
        schemas.append(kwargs.get("json_schema"))
        return chat(messages, **kwargs)

    runner.chat = recording  # type: ignore[method-assign]
    with anyio.fail_after(5):
        assert await WorkerAgent().run(runner, "How many rows does the table have?") == "42"
    assert schemas[-1]["properties"]["answer"] == {"type": "number"}


def test_paths_a_goal_names() -> None:
    from plugins.goals import paths_in

    goal = "How many rows does /data/sales.csv have? Compare with ~/notes/q3.md, not https://x.org/a/b."
    assert paths_in(goal) == ["/data/sales.csv", "~/notes/q3.md"]
    assert paths_in("what time is it in a/b?") == []


async def test_worker_asks_for_the_folder_the_task_names_before_it_starts() -> None:
    runner = Runner(
        ['{"choice": "clock.now"}', '{"tz": "UTC"}', '{"choice": "done"}', '{"answer": 3}'],
        {
            "proc.request": lambda p: {"granted": p["target"] == "/data/sales.csv"},
            "tool.search": TOOLS,
            "tool.call": {"is_error": False, "text": "3"},
        },
    )
    with anyio.fail_after(5):
        assert await WorkerAgent().run(runner, "How many rows do /data/sales.csv and /secret/x.csv have?") == "3"
    asked = [p for name, p in runner.calls if name == "proc.request"]
    assert [(p["kind"], p["target"], p["reason"]) for p in asked] == [
        ("file", "/data/sales.csv", "the task names it"),
        ("file", "/secret/x.csv", "the task names it"),
    ]
    assert "I may not read /secret/x.csv: it was not granted.\n" in runner.out


def test_path_arguments_are_grounded_in_the_paths_the_goal_names(tmp_path: Path) -> None:
    from plugins._args import ground_args, known_paths

    (tmp_path / "budget.csv").write_text("a\n1\n")
    goal = f"What is the total in {tmp_path}/budget.csv? Compare with {tmp_path}."
    known = known_paths(goal)
    assert known == [f"{tmp_path}/budget.csv", str(tmp_path)]
    made_up = {"path": "/Users/me/Documents/budget.csv", "column": "cost", "n": 3}
    assert ground_args(made_up, known) == {"path": f"{tmp_path}/budget.csv", "column": "cost", "n": 3}
    assert ground_args({"file": "budget.csv"}, [str(tmp_path)]) == {"file": f"{tmp_path}/budget.csv"}
    assert ground_args({"path": "${s1.text}", "repo_path": "x"}, known) == {"path": "${s1.text}", "repo_path": known[0]}
    assert ground_args({"path": "/anything"}, []) == {"path": "/anything"}  # nothing named: nothing to ground in


def test_worker_argument_schema_offers_the_paths_and_numbers_it_was_given() -> None:
    schema = {
        "properties": {"path": {"type": "string"}, "a": {"type": "number"}, "n": {"type": "integer"}},
        "required": ["path", "a", "n"],
    }
    out = args_schema(schema, ["/d/x.csv"], [2.5, 4.0])
    assert out["properties"] == {"path": {"enum": ["/d/x.csv"]}, "a": {"enum": [2.5, 4.0]}, "n": {"enum": [4.0]}}
    assert args_schema(schema)["properties"]["path"] == {"type": "string", "maxLength": 120}


def test_worker_candidates_fit_the_goal() -> None:
    from plugins.worker import fitting

    def tool(description: str, *required: str) -> dict[str, Any]:
        return {"description": description, "input_schema": {"required": list(required)}}

    tools = {
        "task.list": tool("List task trees"),
        "docs.read_csv": tool("Read a CSV file", "path"),
        "docs.read_docx": tool("Read a Word document (.docx)", "path"),
        "calc.multiply": tool("Multiply two numbers", "a", "b"),
        "disk.read_text_file": tool("Read a text file", "path"),
    }
    names, obvious = fitting("What is the owner in /d/report.docx?", tools, ["/d/report.docx"])
    assert names[0] == "docs.read_docx" and obvious
    assert "docs.read_csv" not in names and "task.list" not in names  # another file kind; the kernel's own tools
    names, obvious = fitting("What is 17 multiplied by 23?", tools, [])
    assert names[0] == "calc.multiply" and obvious
    assert fitting("List my task trees", tools, [])[0][0] == "task.list"


def test_a_number_answer_is_the_number_the_tool_computed() -> None:
    from plugins.worker import checked_answer

    steps = [{"tool": "calc.multiply", "is_error": False, "text": "391"}]
    assert checked_answer("What is 17 multiplied by 23?", "40", steps) == "391"
    assert checked_answer("Who owns it?", "", [{"is_error": False, "text": "Owner:  Dana"}]) == "Owner: Dana"
    stats = [{"is_error": False, "text": "count=4 sum=1800 mean=450"}]
    assert checked_answer("What is the total cost?", "1800", stats) == "1800"  # grounded: kept
    assert checked_answer("What is the total cost?", "7", []) == "7"  # no result to check against


@pytest.mark.parametrize(
    ("goal", "parts"),
    [
        ("Add 19 and 23, then multiply the result by 3.", ["Add 19 and 23", "multiply the result by 3"]),
        ("Read the size in /d/a.docx and divide it by 4.", ["Read the size in /d/a.docx", "divide it by 4"]),
        ("What is 6 times 7, and what is 100 divided by 4?", ["What is 6 times 7", "what is 100 divided by 4?"]),
        (
            "Give the total in /d/a.csv and the owner of /d/b.docx.",
            ["Give the total in /d/a.csv", "the owner of /d/b.docx"],
        ),
        ("List the files; after that, count them", ["List the files", "count them"]),
        ("What is the sum of 2 and 3?", ["What is the sum of 2 and 3?"]),  # "and" between values: one step
        ("Who owns /d/report.docx?", ["Who owns /d/report.docx?"]),
        ("What is my code? Look in my memory.", ["What is my code? Look in my memory"]),  # a hint, not a request
        ("Who wrote it? When was it saved?", ["Who wrote it", "When was it saved?"]),
    ],
)
def test_worker_splits_a_goal_into_ordered_steps_by_its_structure(goal: str, parts: list[str]) -> None:
    from plugins.worker import subgoals

    assert subgoals(goal) == parts


def test_worker_prefers_the_tool_whose_description_says_the_operation() -> None:
    from plugins.worker import matches_operation

    def tool(description: str) -> dict[str, Any]:
        return {"description": description, "input_schema": {"required": ["x", "y"]}}

    tools = {
        "m.times": tool("Multiply two numbers: x * y."),
        "m.less": tool("Take y away from x: x - y."),
        "m.plus": tool("Add two numbers: x + y."),
        "m.ratio": tool("Divide x by y: x / y."),
    }
    names = list(tools)
    assert matches_operation("What is 1000 minus 387?", names, tools) == ["m.less"]
    assert matches_operation("the difference of 9 and 4", names, tools) == ["m.less"]
    assert matches_operation("multiply the result by 3", names, tools) == ["m.times"]
    assert matches_operation("100 divided by 4", names, tools) == ["m.ratio"]
    assert matches_operation("Add 2 and 2", names, tools) == ["m.plus"]
    assert matches_operation("who owns the report", names, tools) == []  # no operation, no word that sets one apart


CALC = {
    "tools": [
        {
            "name": f"calc.{name}",
            "side_effect": "read_only",
            "description": description,
            "input_schema": {"properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
        }
        for name, description in [
            ("multiply", "Multiply two numbers: a * b."),
            ("add", "Add two numbers: a + b."),
            ("subtract", "Subtract b from a: a - b."),
        ]
    ]
}


async def test_worker_goes_on_until_every_step_of_the_goal_is_done() -> None:
    results = iter([{"is_error": False, "text": "42"}, {"is_error": False, "text": "126"}])
    # Nothing is asked of the model: each step names its operation, one tool says it, its words order the operands
    # (the earlier result first for "the result"), and the answer is the last number the tools computed.
    runner = Runner([], {"tool.search": CALC, "tool.call": lambda p: next(results)})
    with anyio.fail_after(5):
        answer = await WorkerAgent().run(runner, "Add 19 and 23, then multiply the result by 3.")
    assert answer == "126"
    called = [(p["tool"], p["args"]) for name, p in runner.calls if name == "tool.call"]
    assert called == [("calc.add", {"a": 19, "b": 23}), ("calc.multiply", {"a": 42, "b": 3})]
    assert not runner.replies  # every scripted reply used: nothing more was asked


async def test_worker_answers_each_independent_part_and_picks_subtract_for_minus() -> None:
    results = iter([{"is_error": False, "text": "613"}, {"is_error": False, "text": "42"}])
    runner = Runner(
        ['{"answer": 613}', '{"answer": 1}'],
        {"tool.search": CALC, "tool.call": lambda p: next(results)},
    )
    with anyio.fail_after(5):
        answer = await WorkerAgent().run(runner, "What is 1000 minus 387, and what is 6 times 7?")
    assert [p["tool"] for name, p in runner.calls if name == "tool.call"] == ["calc.subtract", "calc.multiply"]
    assert answer == "613; 42"  # each part's number is what its tool computed, not the model's guess


def test_supervisor_splits_by_the_goals_structure_and_picks_each_parts_agent() -> None:
    from plugins.supervisor import agent_for, structural_split

    assert structural_split("Compute 12 times 12, and find the revenue in /d/report.docx.") == [
        {"agent": "worker", "goal": "Compute 12 times 12"},
        {"agent": "worker", "goal": "find the revenue in /d/report.docx"},
    ]
    # A part that works on the one before stays with it: the chain is one child's.
    assert structural_split("Add 2 and 3, then multiply the result by 4") == []
    assert agent_for("summarise /d/notes.txt") == "summarizer" and agent_for("write a haiku about rain") == "chat"


def test_planner_groups_a_chain_and_runs_independent_parts_apart() -> None:
    from plugins.planner import plan_parts

    assert plan_parts("What is 6 times 7, and what is 100 divided by 4?") == [
        ["What is 6 times 7"],
        ["what is 100 divided by 4?"],
    ]
    assert plan_parts("Add 19 and 23, then multiply the result by 3.") == [
        ["Add 19 and 23", "multiply the result by 3"]
    ]


def test_worker_reads_a_text_file_with_a_text_reader_and_lists_a_folder() -> None:
    from plugins.worker import fitting

    def tool(description: str, *required: str) -> dict[str, Any]:
        return {"description": description, "input_schema": {"required": list(required)}}

    tools = {
        "docs.read_docx": tool("Read the text of a Word document (.docx) at an absolute path.", "path"),
        "fs.search": tool("Search the text of the user's files.", "query"),
        "disk.read_text_file": tool("Read the complete contents of a file as text.", "path"),
        "disk.list_directory": tool("Get a listing of all files and directories in a path.", "path"),
        "disk.list_allowed_directories": tool("Returns the list of directories this server may access."),
        "mem.list": tool("List the items of a memory namespace."),
    }
    names, obvious = fitting("What is the server named in /t/notes.txt?", tools, ["/t/notes.txt"])
    assert names[0] == "disk.read_text_file" and obvious  # "text of a Word document" is no text-file reader
    names, obvious = fitting("Which file in /t is a Word document?", tools, ["/t"])
    assert names[0] == "disk.list_directory" and obvious  # a folder: the lister that takes its path
    names, _ = fitting("What is the first item in the list in /t/todo.md?", tools, ["/t/todo.md"])
    assert names[0] == "disk.read_text_file"  # "list" names mem.list, which cannot read the file the goal names


def test_a_file_of_a_kind_goes_to_the_tools_made_for_it_before_tools_its_words_name() -> None:
    from plugins.worker import fitting

    def tool(description: str, *required: str) -> dict[str, Any]:
        return {"description": description, "input_schema": {"required": list(required)}}

    tools = {
        "git.git_status": tool("Shows the working tree status", "repo_path"),
        "docs.read_docx": tool("Read the text of a Word document (.docx).", "path"),
        "docs.read_csv": tool("Read a CSV file: its header, its rows and how many rows it has.", "path"),
        "docs.csv_column_stats": tool(
            "Statistics of one column of a CSV file: count, sum (total), mean, min, max.", "path", "column"
        ),
    }
    names, obvious = fitting("What is the status in /d/report.docx?", tools, ["/d/report.docx"])
    assert names[0] == "docs.read_docx" and obvious  # "status" names git_status, which is not for a .docx
    names, obvious = fitting("How many people are listed in /d/people.csv?", tools, ["/d/people.csv"])
    assert names[0] == "docs.read_csv" and obvious  # a reader of the kind
    names, obvious = fitting("What is the total cost in /d/budget.csv?", tools, ["/d/budget.csv"])
    assert names[0] == "docs.csv_column_stats" and obvious  # its description says the total


@pytest.mark.parametrize(
    ("message", "task"),
    [
        ("What is 17 multiplied by 23?", True),
        ("What does /d/notes.txt say about backups?", True),
        ("what time is it in Asia/Tokyo?", True),
        ("What is my locker code? Look in my memory.", True),
        ("say hello", False),
        ("Tell me a story about 3 bears", False),  # a number, no operation
        ("search my files for notes about backups", False),  # the file search, not a tool task
    ],
)
def test_chat_knows_a_tool_task_from_conversation(message: str, task: bool) -> None:
    from plugins.chat import file_query, tool_task

    assert (tool_task(message) and file_query(message) is None) is task


async def test_chat_does_a_tool_task_as_the_worker_does_and_converses_otherwise() -> None:
    from plugins.chat import ChatAgent

    runner = Runner(["Hello there!"], {"tool.search": CALC, "tool.call": {"is_error": False, "text": "391"}})
    with anyio.fail_after(5):
        assert await ChatAgent().run(runner, "What is 17 multiplied by 23?") == "391"  # no model call
        assert runner.replies == ["Hello there!"]
        assert await ChatAgent().run(runner, "say hello") == "Hello there!"
    called = [(p["tool"], p["args"]) for name, p in runner.calls if name == "tool.call"]
    assert called == [("calc.multiply", {"a": 17, "b": 23})]


async def test_chat_falls_back_to_conversation_when_tools_are_not_allowed() -> None:
    from plugins.chat import ChatAgent

    denied = PermissionDenied("tool.search by pid 5 (chat): no tools granted")
    runner = Runner(["I cannot use tools, but 17 times 23 is 391."], {"tool.search": denied})
    with anyio.fail_after(5):
        answer = await ChatAgent().run(runner, "What is 17 multiplied by 23?")
    assert answer == "I cannot use tools, but 17 times 23 is 391."
