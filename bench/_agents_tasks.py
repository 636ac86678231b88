"""The tasks of bench/agents: the fixture folder they work on, the memory they recall, and each task's checkable
answer. ``{dir}`` in a goal is the task folder (granted to the agent when it asks)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["MEMORY", "TASKS", "Task", "check", "make_fixture"]


@dataclass(frozen=True)
class Task:
    id: str
    kind: str  # single, chain, fanout, file, memory, split
    goal: str
    #: Every one must be in the answer: a number (compared as a number) or a text (case-insensitive).
    expect: tuple[str, ...]
    agents: tuple[str, ...] = ("planner", "worker")
    #: Written after the agents were tuned on the others, run once as they were and never tuned on: how the agents
    #: do on tasks they were not built around (``metrics.success_rate_heldout``).
    heldout: bool = False


#: Memory the agents recall: core blocks (label, value) and archived notes, in each agent's own namespace.
CORE_MEMORY = [("locker_code", "My locker code is 4471."), ("rent", "My monthly rent is 950 euros.")]
ARCHIVED = ["My sister lives in Lisbon.", "My dentist is Dr. Okafor, on Baker Street.", "My cat is called Miso."]
MEMORY: dict[str, Any] = {"core": CORE_MEMORY, "archive": ARCHIVED}


def _tokyo_noon_paris() -> str:
    day = datetime.now(ZoneInfo("Europe/Paris")).date()
    noon = datetime(day.year, day.month, day.day, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    return noon.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")


def make_fixture(root: Path) -> None:
    """The task folder: notes, CSVs, a Word document, a git repository of three commits."""
    import docx

    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text(
        "Backup notes.\nThe backup server is named orion.\nBackups run at 02:30 every night.\n"
        "Backups are kept for 14 days.\n"
    )
    (root / "todo.md").write_text("# Todo\n- renew passport\n- call the plumber\n- buy a lamp\n")
    (root / "budget.csv").write_text("item,cost\nrent,1200\nfood,350\ntravel,180\nbooks,70\n")
    (root / "people.csv").write_text("name,city,age\nAnna,Oslo,30\nBen,Rome,40\nCleo,Lima,50\n")
    document = docx.Document()
    for line in ("Quarterly report", "Revenue: 48200 EUR", "Owner: Dana Lee", "Status: approved"):
        document.add_paragraph(line)
    document.save(str(root / "report.docx"))
    repo = root / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.org"}
    env |= {"GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.org"}

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, env=env, capture_output=True)

    git("init", "-q", "-b", "main")
    for n, message in enumerate(("add parser", "fix tokenizer bug", "release 1.2")):
        (repo / "CHANGES.txt").write_text("".join(f"change {i}\n" for i in range(n + 1)))
        git("add", "CHANGES.txt")
        git("commit", "-q", "-m", message)


def tasks() -> list[Task]:
    d = "{dir}"
    split = ("supervisor",)
    return [
        # single tool
        Task("calc-mul", "single", "What is 17 multiplied by 23?", ("391",)),
        Task("calc-div", "single", "What is 1250 divided by 5?", ("250",)),
        Task("calc-sub", "single", "What is 1000 minus 387?", ("613",)),
        Task("every-sum", "single", "Use the everything server's get-sum tool: what is the sum of 19 and 23?", ("42",)),
        Task(
            "tz-convert",
            "single",
            "Convert 12:00 in Europe/Paris to Asia/Tokyo time. What time is it there?",
            (_tokyo_noon_paris(),),
        ),
        Task("tz-year", "single", "What year is it now in UTC?", (str(datetime.now(ZoneInfo("UTC")).year),)),
        # files
        Task("csv-rows", "file", f"How many rows does {d}/budget.csv have?", ("4",)),
        Task("csv-total", "file", f"What is the total cost in {d}/budget.csv?", ("1800",)),
        Task("docx-revenue", "file", f"What is the revenue in {d}/report.docx?", ("48200",)),
        Task("docx-owner", "file", f"Who is the owner named in {d}/report.docx?", ("Dana Lee",)),
        Task("txt-server", "file", f"What is the backup server called, according to {d}/notes.txt?", ("orion",)),
        Task("txt-days", "file", f"How many days are backups kept, according to {d}/notes.txt?", ("14",)),
        Task("dir-docx", "file", f"Which file in {d} is a Word document?", ("report.docx",)),
        Task("todo-first", "file", f"What is the first item in the list in {d}/todo.md?", ("passport",)),
        Task(
            "git-last",
            "file",
            f"What is the message of the latest commit in the git repository {d}/repo?",
            ("release 1.2",),
        ),
        Task("git-author", "file", f"Who is the author of the latest commit in the git repository {d}/repo?", ("Ada",)),
        # chains: a result feeds the next call
        Task("chain-csv-mul", "chain", f"Take the total cost in {d}/budget.csv and multiply it by 2.", ("3600",)),
        Task("chain-docx-div", "chain", f"Read the revenue in {d}/report.docx and divide it by 4.", ("12050",)),
        Task("chain-sum-mul", "chain", "Add 19 and 23, then multiply the result by 3.", ("126",)),
        Task("chain-age", "chain", f"Take the average age in {d}/people.csv and add 10 to it.", ("50",)),
        Task("chain-max-sub", "chain", f"Subtract 100 from the largest cost in {d}/budget.csv.", ("1100",)),
        # fan-outs: independent calls at once
        Task("fan-calc", "fanout", "What is 6 times 7, and what is 100 divided by 4?", ("42", "25")),
        Task(
            "fan-files",
            "fanout",
            f"Give the total cost in {d}/budget.csv and the revenue in {d}/report.docx.",
            ("1800", "48200"),
        ),
        Task(
            "fan-mixed",
            "fanout",
            f"What is the backup server named in {d}/notes.txt, and who owns {d}/report.docx?",
            ("orion", "Dana Lee"),
        ),
        # memory
        Task("mem-locker", "memory", "What is my locker code? Look in my memory.", ("4471",)),
        Task("mem-sister", "memory", "Which city does my sister live in? Search my memory.", ("Lisbon",)),
        Task("mem-dentist", "memory", "What is the name of my dentist? Search my memory.", ("Okafor",)),
        Task("mem-rent-year", "memory", "Find my monthly rent in my memory and multiply it by 12.", ("11400",)),
        Task("mem-cat", "memory", "What is my cat called? Search my memory.", ("Miso",)),
        # supervisor splits
        Task(
            "split-calc-docx",
            "split",
            f"Compute 12 times 12, and find the revenue in {d}/report.docx.",
            ("144", "48200"),
            split,
        ),
        Task(
            "split-calc-git",
            "split",
            f"Add 9 and 33, and give the latest commit message in {d}/repo.",
            ("42", "release 1.2"),
            split,
        ),
        Task("split-two-calc", "split", "Multiply 25 by 4, and divide 72 by 8.", ("100", "9"), split),
        Task(
            "split-csv-txt",
            "split",
            f"Give the number of rows in {d}/people.csv and the backup time in {d}/notes.txt.",
            ("3", "02:30"),
            split,
        ),
        *heldout_tasks(),
    ]


def heldout_tasks() -> list[Task]:
    """Two batches written on 2026-12-05 to see whether what the agents carry generalises: other wordings, other
    columns and lines of the same files, other tools of the same servers. The first (``h-``) was written after the
    agents reached 1.0 on the tasks above; its first run scored 0.59 (bench/results/agents.json params.heldout_history)
    and its misses were then fixed, so it counts as tuned now. The second (``g-``) was written after those fixes and
    has not been tuned on: it is the held-out figure."""
    return [*_first_batch(), *_second_batch()]


def _second_batch() -> list[Task]:
    d = "{dir}"
    h = {"heldout": True}
    split = ("supervisor",)
    return [
        Task("g-plus", "single", "What is 15 plus 27?", ("42",), **h),
        Task("g-sub", "single", "Subtract 58 from 200.", ("142",), **h),
        Task("g-year", "single", "What is the current year in Europe/Berlin?", (str(datetime.now().year),), **h),
        Task("g-csv-avg", "file", f"What is the average cost in {d}/budget.csv?", ("450",), **h),
        Task("g-csv-lima", "file", f"Who lives in Lima, according to {d}/people.csv?", ("Cleo",), **h),
        Task("g-csv-anna", "file", f"How old is Anna, according to {d}/people.csv?", ("30",), **h),
        Task("g-todo-last", "file", f"What is the last item in {d}/todo.md?", ("lamp",), **h),
        Task("g-git-count", "file", f"How many commits are in the git repository {d}/repo?", ("3",), **h),
        Task(
            "g-git-who",
            "file",
            f"Who wrote the commit 'fix tokenizer bug' in the git repository {d}/repo?",
            ("Ada",),
            **h,
        ),
        Task(
            "g-fan",
            "fanout",
            f"At what time do the backups run each night, according to {d}/notes.txt, and what is 5 times 5?",
            ("02:30", "25"),
            **h,
        ),
        Task("g-chain-min", "chain", f"Take the smallest cost in {d}/budget.csv and add 30 to it.", ("100",), **h),
        Task("g-mem-chain", "memory", "Find my locker code in my memory, then add 1 to it.", ("4472",), **h),
        Task("g-mem-where", "memory", "Where does my sister live? Search my memory.", ("Lisbon",), **h),
        Task(
            "g-split",
            "split",
            f"Multiply 7 by 8, and find the owner in {d}/report.docx.",
            ("56", "Dana Lee"),
            split,
            **h,
        ),
    ]


def _first_batch() -> list[Task]:
    d = "{dir}"
    h: dict[str, bool] = {}
    split = ("supervisor",)
    return [
        Task("h-calc-pow", "single", "How much is 48 divided by 6?", ("8",), **h),
        Task(
            "h-tz-date",
            "single",
            "What is today's date in Asia/Tokyo?",
            (datetime.now(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d"),),
            **h,
        ),
        Task("h-csv-min", "file", f"What is the smallest cost in {d}/budget.csv?", ("70",), **h),
        Task("h-csv-people", "file", f"How many people are listed in {d}/people.csv?", ("3",), **h),
        Task("h-csv-oldest", "file", f"What is the highest age in {d}/people.csv?", ("50",), **h),
        Task("h-docx-status", "file", f"What is the status in {d}/report.docx?", ("approved",), **h),
        Task("h-txt-when", "file", f"At what time do backups run, according to {d}/notes.txt?", ("02:30",), **h),
        Task("h-todo-second", "file", f"What is the second item in {d}/todo.md?", ("plumber",), **h),
        Task(
            "h-git-first",
            "file",
            f"What was the message of the first commit in the git repository {d}/repo?",
            ("add parser",),
            **h,
        ),
        Task("h-dir-csv", "file", f"Which files in {d} are spreadsheets?", ("budget.csv", "people.csv"), **h),
        Task("h-chain-rows", "chain", f"Count the rows in {d}/budget.csv, then multiply that by 10.", ("40",), **h),
        Task("h-chain-rent", "chain", "Look up my monthly rent in my memory, then subtract 50 from it.", ("900",), **h),
        Task(
            "h-fan-two",
            "fanout",
            f"What is 9 times 9, and who is the owner in {d}/report.docx?",
            ("81", "Dana Lee"),
            **h,
        ),
        Task("h-mem-street", "memory", "On which street is my dentist? Check my memory.", ("Baker",), **h),
        Task(
            "h-split", "split", f"Divide 90 by 3, and give the revenue in {d}/report.docx.", ("30", "48200"), split, **h
        ),
    ]


TASKS = tasks()

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def _has(answer: str, expected: str) -> bool:
    if re.fullmatch(r"-?\d+(?:\.\d+)?", expected):
        found = [n.replace(",", "") for n in _NUMBER.findall(answer.replace(",", ""))]
        return any(abs(float(n) - float(expected)) < 1e-6 for n in found if n not in ("-",))
    return expected.lower() in answer.lower()


def check(task: Task, answer: str | None) -> bool:
    """Every expected value is in the answer."""
    return bool(answer) and all(_has(answer or "", e) for e in task.expect)
