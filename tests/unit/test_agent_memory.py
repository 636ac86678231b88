"""Agent memory on a real SQLite file and a real chroma index: core blocks, recall, archival, forget."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from memory.agent_memory import AgentMemory, MemoryOpError
from memory.memory_vectors import ChromaVectors
from memory.store import Store


@pytest.fixture
def mem(store: Store) -> AgentMemory:
    return AgentMemory(store.db)


def _snapshot(store: Store) -> list[tuple[object, ...]]:
    tables = ("mem_core", "mem_core_pending", "mem_archival", "messages")
    return [tuple(map(tuple, store.db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall())) for t in tables]


def test_core_edits_wait_for_the_turn_boundary(mem: AgentMemory) -> None:
    ns = "agent:chat"
    mem.stage_core(ns, "persona", "Terse.", actor="user")  # no pid: applied at once
    staged = mem.stage_core(ns, "persona", "Friendly.", actor="agent:chat#3", pid=3)
    assert staged["applied"] is False
    assert mem.render_core(ns) == "[persona]\nTerse."
    assert [p["value"] for p in mem.pending(ns)] == ["Friendly."]
    assert mem.apply_pending(pid=4) == 0  # another process's boundary applies nothing of pid 3
    assert mem.apply_pending(pid=3) == 1
    assert mem.render_core(ns) == "[persona]\nFriendly." and mem.pending(ns) == []
    block = mem.core(ns)[0]
    assert (block["source_kind"], block["actor"]) == ("agent", "agent:chat#3")


def test_core_bad_input_is_clear_and_changes_nothing(store: Store, mem: AgentMemory) -> None:
    ns = "agent:chat"
    mem.stage_core(ns, "human", "Name: Ada", limit=20, actor="user")
    before = _snapshot(store)
    with pytest.raises(MemoryOpError, match="limited to 20 characters"):
        mem.stage_core(ns, "human", "Name: Ada Lovelace, mathematician", actor="user")
    with pytest.raises(MemoryOpError, match="bad core block label"):
        mem.stage_core(ns, "Bad Label!", "x", actor="user")
    with pytest.raises(MemoryOpError, match="no core block 'ghost'"):
        mem.stage_core(ns, "ghost", None, actor="user")
    with pytest.raises(MemoryOpError, match="unknown provenance 'web'"):
        mem.stage_core(ns, "human", "x", source="web", actor="user")
    assert _snapshot(store) == before


def test_archival_tags_time_provenance_and_forget(store: Store, mem: AgentMemory) -> None:
    ns = "agent:chat"
    old = mem.archive(
        ns,
        "The cabin wifi password is cedar42",
        tags=["Trip", "wifi"],
        source="file",
        source_ref="~/notes/cabin.md",
        actor="agent:chat#1",
    )
    cutoff = time.time()
    new = mem.archive(ns, "Cabin check-in is at 15:00", tags=["trip"], source="user", actor="user")
    mem.archive("agent:other", "cabin secrets of another agent", source="agent", actor="agent:other#2")
    hits = mem.search(ns, "cabin", kinds=("archival",))
    assert {h["id"] for h in hits} == {old["id"], new["id"]}
    assert mem.search(ns, "cabin", kinds=("archival",), tags=["wifi"])[0]["id"] == old["id"]
    assert [h["id"] for h in mem.search(ns, "cabin", kinds=("archival",), since=cutoff)] == [new["id"]]
    assert old["source"] == {"kind": "file", "ref": "~/notes/cabin.md", "actor": "agent:chat#1"}
    assert old["tags"] == ["trip", "wifi"]
    with pytest.raises(MemoryOpError, match=f"no memory item {old['id']} in agent:other"):
        mem.forget("agent:other", old["id"])
    mem.forget(ns, old["id"])
    assert [h["id"] for h in mem.search(ns, "password cedar42")] == []
    with pytest.raises(MemoryOpError, match="unknown memory item"):
        mem.item(ns, "x1")


def test_recall_is_the_agents_own_message_log(store: Store, mem: AgentMemory) -> None:
    for pid, agent in ((1, "chat"), (2, "chat"), (3, "coder")):
        store.save_process({"pid": pid, "agent": agent, "state": "exited"})
    store.add_message(1, "user", "Remember that the dentist is on Friday")
    store.add_message(2, "assistant", "Noted: dentist appointment Friday at 9")
    store.add_message(3, "user", "the dentist of the coder agent")
    hits = mem.search("agent:chat", "dentist", kinds=("recall",))
    assert [h["role"] for h in hits] and {h["namespace"] for h in hits} == {"agent:chat"} and len(hits) == 2
    assert {h["source"]["kind"] for h in hits} == {"user", "agent"}
    # a read-only reader sees messages written after the last index pass too
    store.add_message(1, "user", "dentist moved to Monday")
    reader = AgentMemory(store.db, read_only=True)
    assert any("Monday" in h["text"] for h in reader.search("agent:chat", "dentist", kinds=("recall",)))
    forgotten = mem.forget("agent:chat", hits[0]["id"])
    assert forgotten["id"] not in {h["id"] for h in mem.search("agent:chat", "dentist")}
    assert store.db.execute("SELECT count(*) FROM messages WHERE id = ?", [int(forgotten["id"][1:])]).fetchone()[0] == 0


def test_hybrid_search_finds_paraphrases_through_vectors(tmp_path: Path, store: Store, mem: AgentMemory) -> None:
    vectors = ChromaVectors(store.path, tmp_path / "chroma")
    mem.vectors = vectors
    ns = "agent:chat"
    flight = mem.archive(ns, "The flight to Lisbon leaves at 10:05 from gate B", source="user", actor="user")
    mem.archive(ns, "Buy oat milk and two lemons", source="user", actor="user")
    mem.archive("agent:other", "The plane departs at noon", source="user", actor="user")
    while vectors.index_pending():
        pass
    assert vectors.backlog() == 0
    hits = mem.search(ns, "plane departure time", kinds=("archival",), limit=1)
    assert [h["id"] for h in hits] == [flight["id"]]  # no shared word: only the vector side can find it
    mem.forget(ns, flight["id"])
    while vectors.index_pending():
        pass
    assert flight["id"] not in vectors.query(ns, "plane departure time", ("archival",), 5)
