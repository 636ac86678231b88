"""Answers read off tool results without the model (plugins/extract.py), on the result formats real servers write:
git log entries, memory notes, sentences, ``key: value`` lines, ``key=value`` stats, lists, folder listings, JSON."""

from __future__ import annotations

import json

import pytest

from plugins._args import error_options, fixed_args, string_candidates
from plugins.extract import extract_answer, extract_number

GIT = (
    "Commit history:\nCommit: 'abc123'\nAuthor: Ada\nDate: 2026-01-01\nMessage: release 1.2\n\n"
    "Commit: 'def456'\nAuthor: Bob\nDate: 2025-12-01\nMessage: fix tokenizer bug\n"
)
MEMORY = (
    "My locker code is 4471.\nMy monthly rent is 950 euros.\nMy sister lives in Lisbon.\n"
    "My dentist is Dr. Okafor, on Baker Street.\nMy cat is called Miso."
)
NOTES = (
    "Backup notes.\nThe backup server is named orion.\nBackups run at 02:30 every night.\n"
    "Backups are kept for 14 days.\n"
)
STATS = "count=4 sum=1800 mean=450 min=70 max=1200"
REPORT = "Quarterly report\nRevenue: 48200 EUR\nOwner: Dana Lee\nStatus: approved"
TZ = json.dumps(
    {
        "source": {"timezone": "Europe/Paris", "datetime": "2026-12-05T12:00:00+01:00"},
        "target": {"timezone": "Asia/Tokyo", "datetime": "2026-12-05T20:00:00+09:00"},
        "time_difference": "+8.0h",
    }
)


@pytest.mark.parametrize(
    ("question", "text", "form", "answer"),
    [
        ("What is the message of the latest commit in the git repository /t/repo?", GIT, "text", "release 1.2"),
        ("Who is the author of the latest commit in /t/repo?", GIT, "text", "Ada"),
        ("What is my locker code? Look in my memory.", MEMORY, "text", "4471"),
        ("Which city does my sister live in?", MEMORY, "text", "Lisbon"),
        ("What is the name of my dentist?", MEMORY, "text", "Dr. Okafor"),  # not cut at "Dr."
        ("What is my cat called?", MEMORY, "text", "Miso"),
        ("What is the backup server called, according to /t/notes.txt?", NOTES, "text", "orion"),
        ("How many days are backups kept?", NOTES, "number", "14"),
        ("What is the backup time in /t/notes.txt", NOTES, "text", "02:30"),
        ("What is the total cost in /t/budget.csv?", STATS, "number", "1800"),  # total is the sum
        ("What is the largest cost?", STATS, "number", "1200"),
        (
            "How many rows does /t/budget.csv have?",
            "4 rows\nitem, cost\nrent, 1200\nfood, 350\nbus, 9\nbooks, 70",
            "number",
            "4",
        ),
        ("Who owns /t/report.docx?", REPORT, "text", "Dana Lee"),
        ("What is the revenue in /t/report.docx?", REPORT, "text", "48200 EUR"),
        (
            "What is the first item in the list in /t/todo.md?",
            "# Todo\n- renew passport\n- call the plumber",
            "text",
            "renew passport",
        ),
        (
            "Which file in /t is a Word document?",
            "[FILE] budget.csv\n[FILE] report.docx\n[DIR] repo",
            "path",
            "report.docx",
        ),
        ("Convert 12:00 in Europe/Paris to Asia/Tokyo. What time is it there?", TZ, "text", "20:00"),  # not given
        (
            "What year is it now in UTC?",
            '{"timezone": "UTC", "datetime": "2031-02-03T04:05:06+00:00"}',
            "number",
            "2031",
        ),
    ],
)
def test_the_answer_is_read_off_the_fact_the_question_is_about(
    question: str, text: str, form: str, answer: str
) -> None:
    assert extract_answer(question, [text], form) == answer


def test_nothing_is_made_up_when_no_fact_is_about_the_question() -> None:
    assert extract_answer("What is my dog called?", ["The weather is fine."]) is None
    assert extract_answer("Is the repository clean?", [GIT], "yes_no") is None  # a judgement is the model's
    assert extract_number("What is the total?", ["a=1 b=2"]) is None
    assert extract_answer("What time is it?", []) is None


def test_the_latest_result_wins_a_tie() -> None:
    assert extract_answer("what time is it in Tokyo?", ["2026-12-04T23:00Z", "08:00 JST"]) == "08:00"


def test_string_arguments_are_copied_from_what_the_goal_names() -> None:
    candidates = string_candidates("Convert 12:00 in Europe/Paris to Asia/Tokyo time.")
    assert candidates[:3] == ["12:00", "Europe/Paris", "Asia/Tokyo"]  # in the order named
    assert "total" not in string_candidates("What is the total cost in /d/budget.csv?")  # says what to do, no value
    assert "budget" not in " ".join(string_candidates("What is the total cost in /d/budget.csv?"))  # paths are not


def test_a_failed_calls_error_lists_the_valid_values_for_the_argument_it_names() -> None:
    args = {"path": "/d/b.csv", "column": "total"}
    assert error_options("no column 'total' (columns: item, cost)", args) == {"column": ["item", "cost"]}
    assert error_options("Invalid value. Valid values: red, green, blue", {"colour": "pink"}) == {}  # not named
    assert error_options("colour must be one of: red, green, blue", {"colour": "pink"}) == {
        "colour": ["red", "green", "blue"]
    }
    assert error_options("file not found", args) == {}


def test_fixed_arguments_need_no_model_and_sources_come_first() -> None:
    schema = {
        "properties": {
            "time": {"enum": ["12:00"]},
            "source_timezone": {"enum": ["Europe/Paris", "Asia/Tokyo"]},
            "target_timezone": {"enum": ["Europe/Paris", "Asia/Tokyo"]},
        }
    }
    text = "Convert 12:00 in Europe/Paris to Asia/Tokyo"
    assert fixed_args(schema, text) == {
        "time": "12:00",
        "source_timezone": "Europe/Paris",
        "target_timezone": "Asia/Tokyo",
    }
    assert fixed_args(schema, "Convert 12:00 in Asia/Tokyo to Europe/Paris")["source_timezone"] == "Asia/Tokyo"
    assert fixed_args({"properties": {"a": {"enum": [1, 2]}}}, "") is None  # a choice is left to make
    assert fixed_args({"properties": {"q": {"type": "string"}}}, "") is None


def test_memory_listings_answer_from_facts_not_from_the_agents_own_transcript() -> None:
    listing = json.dumps(
        {
            "pending": [{"label": "rent", "value": "My monthly rent is 950 euros."}],
            "recall": [
                # The task itself, as the user asked it, and the agent's own earlier output.
                {"kind": "recall", "role": "user", "text": "Find my monthly rent in my memory and multiply it by 12."},
                {"kind": "recall", "role": "assistant", "text": "My monthly rent is 3 euros, I think."},
            ],
            "archival": [
                {"kind": "archival", "text": "My cat is called Miso."},
                {"kind": "archival", "text": "My dentist is Dr. Okafor, on Baker Street."},
            ],
        }
    )
    assert extract_number("Find my monthly rent in my memory", [listing]) == 950
    # "dentist" (the question's own word) outweighs "called" (a synonym of "name") in the cat's note.
    assert extract_answer("What is the name of my dentist?", [listing]) == "Dr. Okafor"
    assert extract_answer("What is my cat called?", [listing]) == "Miso"


def test_deprecated_tools_are_never_candidates() -> None:
    from plugins.worker import fitting

    tools = {
        "disk.read_file": {
            "description": "Read a file as text. DEPRECATED: use read_text_file.",
            "input_schema": {"required": ["path"]},
        },
        "disk.read_text_file": {"description": "Read a file as text.", "input_schema": {"required": ["path"]}},
    }
    names, obvious = fitting("What does /d/notes.txt say?", tools, ["/d/notes.txt"])
    assert names == ["disk.read_text_file"] and obvious


PEOPLE = "name,city,age\nAnna,Oslo,30\nBen,Rome,40\nCleo,Lima,50\n"
LOG = (
    "Commit: a\nDate: 2026-03-03 10:00:00\nMessage: release 1.2\n\nCommit: b\nDate: 2026-02-02 10:00:00\n"
    "Message: fix tokenizer bug\n\nCommit: c\nDate: 2026-01-01 10:00:00\nMessage: add parser\n"
)


@pytest.mark.parametrize(
    ("question", "text", "form", "answer"),
    [
        ("How many people are listed in /t/people.csv?", PEOPLE, "number", "3"),  # a raw CSV is a table
        ("Which city does Ben live in, according to /t/people.csv?", PEOPLE, "text", "Rome"),
        ("What was the message of the first commit?", LOG, "text", "add parser"),  # a log lists the newest first
        ("What is the message of the latest commit?", LOG, "text", "release 1.2"),
        ("On which street is my dentist?", MEMORY, "text", "Baker"),  # the words next to "street"
        ("What is today's date in Asia/Tokyo?", '{"iso": "2026-12-05T11:17:00+09:00"}', "text", "2026-12-05"),
        (
            "Which files in /t are spreadsheets?",
            "[FILE] budget.csv\n[FILE] people.csv\n[FILE] a.docx",
            "path",
            "budget.csv, people.csv",
        ),
    ],
)
def test_tables_logs_and_neighbours(question: str, text: str, form: str, answer: str) -> None:
    assert extract_answer(question, [text], form) == answer
