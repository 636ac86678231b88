"""`aios tasks` and `aios mem` through the one door (task.* and mem.* syscalls as the user, in a kernel the
command starts on the scripted fake model): tables, JSON, audit rows and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aios.cli import cli
from memory.agent_memory import AgentMemory
from memory.store import Store
from memory.tasktree import TaskTreeStore


@pytest.fixture(autouse=True)
def fake_model(aios_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command starts its own kernel: on the scripted model, never the GGUF; surely no daemon."""
    aios_home.mkdir(exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    monkeypatch.setenv("AIOS_SOCKET", str(aios_home / "run" / "none.sock"))


def _user_syscalls() -> list[str]:
    store = Store.open_read_only()
    assert store is not None
    try:
        return [r["syscall"] for r in store.audit_rows(agent="user", limit=1000)]
    finally:
        store.close()


@pytest.fixture
def filled(aios_home: Path) -> dict[str, int]:
    store = Store.open()
    tasks = TaskTreeStore(store.db)
    tree = tasks.create_tree(owner="chat", title="Plan a trip", pid=12)
    dest = tasks.add_node(tree["id"], title="Destination", output="Rome", actor="user")
    hotel = tasks.add_node(tree["id"], title="Hotel", depends_on=[dest["id"]], actor="agent:chat#12")
    new = tasks.replace([dest["id"]], title="Destination", output="Lisbon", actor="agent:chat#12")
    store.save_process({"pid": 12, "agent": "chat", "state": "exited"})
    store.add_message(12, "user", "Find me a hotel in Lisbon")
    memory = AgentMemory(store.db)
    memory.stage_core("agent:chat", "human", "Likes trains", actor="user")
    memory.archive(
        "agent:chat", "Passport expires 2031", tags=["trip"], source="file", source_ref="p.txt", actor="user"
    )
    store.close()
    return {"tree": tree["id"], "dest": dest["id"], "hotel": hotel["id"], "new": new["id"]}


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_tasks_tree_and_show(filled: dict[str, int]) -> None:
    listing = _json(["tasks", "tree", "--json"])
    assert [t["title"] for t in listing["trees"]] == ["Plan a trip"]
    by_pid = _json(["tasks", "tree", "12", "--json"])
    nodes = {n["id"]: n for n in by_pid["trees"][0]["nodes"]}
    assert nodes[filled["dest"]]["superseded_by"] == filled["new"] and nodes[filled["hotel"]]["needs_recheck"]
    text = CliRunner().invoke(cli, ["tasks", "tree", f"t{filled['tree']}"]).stdout
    assert "Destination: Lisbon" in text and "needs re-check" in text and "▶" in text
    shown = _json(["tasks", "show", f"n{filled['dest']}", "--json"])
    assert [v["change"] for v in shown["versions"]] == ["create", f"replaced by n{filled['new']}"]
    assert shown["dependents"] == [filled["hotel"]]
    human = CliRunner().invoke(cli, ["tasks", "show", str(filled["dest"])]).stdout
    assert "superseded by" in human and "agent:chat#12" in human
    assert {"task.trees", "task.get", "task.show"} <= set(_user_syscalls())  # each read checked and audited


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["tasks", "show", "n999"], 2, "no task node n999"),
        (["tasks", "show", "banana"], 2, "not a task node id"),
        (["tasks", "tree", "t404"], 2, "no task tree t404"),
        (["tasks", "tree", "77"], 2, "process 77 has no task tree"),
        (["mem", "ls", "agent:" + "x" * 300], 2, "invalid request"),
    ],
)
def test_tasks_errors_are_one_line(filled: dict[str, int], args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code and message in result.stderr and "Traceback" not in result.output


def test_mem_ls_and_search(filled: dict[str, int]) -> None:
    listing = _json(["mem", "ls", "chat", "--json"])
    assert listing["namespace"] == "agent:chat"
    assert [b["value"] for b in listing["core"]] == ["Likes trains"]
    assert [r["text"] for r in listing["recall"]] == ["Find me a hotel in Lisbon"]
    assert listing["archival"][0]["source"] == {"kind": "file", "ref": "p.txt", "actor": "user"}
    # hybrid: the keyword hit is found; whether it ranks above the vector-only hit depends on whether its vector
    # was embedded yet (in the background), so only the finding is checked
    found = _json(["mem", "search", "agent:chat", "hotel", "--json"])
    assert listing["recall"][0]["id"] in [r["id"] for r in found["results"]]
    recall_only = _json(["mem", "search", "agent:chat", "hotel", "--kind", "recall", "--json"])
    assert {r["kind"] for r in recall_only["results"]} == {"recall"}
    tagged = _json(["mem", "search", "chat", "passport", "--tag", "trip", "--json"])
    assert [r["text"] for r in tagged["results"]] == ["Passport expires 2031"]
    assert "Likes trains" in CliRunner().invoke(cli, ["mem", "ls", "chat"]).stdout
    spaces = {row["namespace"]: row for row in _json(["mem", "namespaces", "--json"])["namespaces"]}
    assert spaces["agent:chat"] == {"namespace": "agent:chat", "core": 1, "recall": 1, "archival": 1}
    assert {"mem.list", "mem.search", "mem.namespaces"} <= set(_user_syscalls())


def test_commands_on_an_empty_home(aios_home: Path) -> None:
    assert _json(["tasks", "tree", "--json"]) == {"trees": []}
    assert _json(["mem", "search", "chat", "x", "--json"]) == {"namespace": "agent:chat", "results": []}


def test_tasks_prompt_shows_the_slice_and_refuses_a_tiny_budget(filled: dict[str, int]) -> None:
    out = _json(["tasks", "prompt", f"t{filled['tree']}", "--node", f"n{filled['hotel']}", "--json"])
    assert "Destination: Lisbon" in out["text"] and "Rome" not in out["text"]
    assert out["path"][-1] == filled["hotel"] and out["dependencies"] == [filled["new"]]
    tiny = CliRunner().invoke(cli, ["tasks", "prompt", f"t{filled['tree']}", "--budget", "3"])
    assert tiny.exit_code == 2 and "cannot fit the active path" in tiny.stderr
