"""The task tree on a real SQLite file: lifecycle, DAG, versions, replace/merge, rollback, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory.store import Store
from memory.tasktree import CycleError, NodeNotFound, TaskError, TaskTreeStore, TreeNotFound, VersionError


@pytest.fixture
def tasks(store: Store) -> TaskTreeStore:
    return TaskTreeStore(store.db)


def _counts(store: Store) -> tuple[int, ...]:
    return tuple(
        store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("task_trees", "task_nodes", "task_node_versions", "task_edges")
    ) + tuple(store.db.execute("SELECT group_concat(version || status || needs_recheck) FROM task_nodes").fetchone())


def test_create_add_update_and_versions(tasks: TaskTreeStore) -> None:
    tree = tasks.create_tree(owner="chat", title="Plan a trip", pid=7)
    root = tree["root_id"]
    assert tree["active_id"] == root and tasks.node(root)["status"] == "running"
    dest = tasks.add_node(tree["id"], title="Destination", output="Rome", status="done", actor="user")
    assert dest["parent_id"] == root and tasks.tree(tree["id"])["active_id"] == dest["id"]
    updated = tasks.update(dest["id"], output="Lisbon", actor="chat")
    assert (updated["version"], updated["output"]) == (2, "Lisbon")
    history = tasks.history(dest["id"])
    assert [(h["version"], h["output"], h["actor"], h["change"]) for h in history] == [
        (1, "Rome", "user", "create"),
        (2, "Lisbon", "chat", "update"),
    ]
    assert [t["id"] for t in tasks.trees(pid=7)] == [tree["id"]]
    assert [n["title"] for n in tasks.active_path(tree["id"])] == ["Plan a trip", "Destination"]


def test_dependencies_propagate_recheck_transitively(tasks: TaskTreeStore) -> None:
    tree = tasks.create_tree(owner="chat", title="Trip")
    tid = tree["id"]
    dest = tasks.add_node(tid, title="Destination", output="Rome", actor="u")
    dates = tasks.add_node(tid, title="Dates", output="May 3-7", actor="u")
    hotel = tasks.add_node(tid, title="Hotel", depends_on=[dest["id"], dates["id"]], actor="u")
    tour = tasks.add_node(tid, title="Tour", depends_on=[hotel["id"]], actor="u")
    other = tasks.add_node(tid, title="Packing", actor="u")
    tasks.update(dest["id"], output="Lisbon", actor="u")
    assert tasks.node(hotel["id"])["needs_recheck"] and tasks.node(tour["id"])["needs_recheck"]
    assert not tasks.node(other["id"])["needs_recheck"]
    # updating a flagged node clears its flag
    assert not tasks.update(hotel["id"], output="Hotel Lx", actor="u")["needs_recheck"]
    closure = tasks.dependency_closure([tour["id"]])
    assert [n["id"] for n in closure] == [hotel["id"], dest["id"], dates["id"]]


def test_cycles_are_refused_and_change_nothing(store: Store, tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="T")["id"]
    a = tasks.add_node(tid, title="A", actor="u")["id"]
    b = tasks.add_node(tid, title="B", depends_on=[a], actor="u")["id"]
    c = tasks.add_node(tid, title="C", depends_on=[b], actor="u")["id"]
    before = _counts(store)
    with pytest.raises(CycleError, match=f"n{a} -> n{c}"):
        tasks.add_dependency(a, c, actor="u")
    with pytest.raises(CycleError):
        tasks.add_dependency(a, a, actor="u")
    assert _counts(store) == before
    # a shared sub-step (diamond) is fine
    d = tasks.add_node(tid, title="D", depends_on=[a], actor="u")["id"]
    assert tasks.add_dependency(c, d, actor="u")["depends_on"] == [b, d]


def test_merge_that_would_close_a_cycle_is_rolled_back(store: Store, tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="T")["id"]
    b = tasks.add_node(tid, title="B", actor="u")["id"]
    x = tasks.add_node(tid, title="X", depends_on=[b], actor="u")["id"]
    a = tasks.add_node(tid, title="A", depends_on=[x], actor="u")["id"]
    before = _counts(store)
    with pytest.raises(CycleError, match="would make a dependency cycle through"):
        tasks.replace([a, b], title="AB", actor="u")
    assert _counts(store) == before


def test_replace_moves_children_dependents_and_active(tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="Recipes")["id"]
    butter = tasks.add_node(tid, title="Fat", output="butter", actor="u")["id"]
    cake = tasks.add_node(tid, title="Cake", depends_on=[butter], actor="u")["id"]
    pie = tasks.add_node(tid, title="Pie", depends_on=[butter], actor="u")["id"]
    tasks.set_active(tid, butter)
    oil = tasks.replace([butter], title="Fat", output="olive oil", actor="u")
    old = tasks.node(butter)
    assert (old["status"], old["superseded_by"]) == ("superseded", oil["id"])
    assert oil["position"] == old["position"] and oil["parent_id"] == old["parent_id"]
    for dish in (cake, pie):
        node = tasks.node(dish)
        assert oil["id"] in node["depends_on"] and node["needs_recheck"]
    assert tasks.tree(tid)["active_id"] == oil["id"]
    with pytest.raises(TaskError, match="superseded by"):
        tasks.update(butter, output="lard", actor="u")


def test_split_then_merge(tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="Meeting")["id"]
    m = tasks.add_node(tid, title="Review", output="Tue 10:00 60min", actor="u")["id"]
    p1 = tasks.add_node(tid, parent_id=m, title="Review part 1", output="Tue 10:00 30min", actor="u")["id"]
    p2 = tasks.add_node(tid, parent_id=m, title="Review part 2", output="Wed 10:00 30min", actor="u")["id"]
    merged = tasks.replace([p1, p2], title="Review (merged)", output="Thu 14:00 60min", actor="u")
    assert merged["parent_id"] == m
    assert [c["id"] for c in tasks.children(m)] == [merged["id"]]
    assert {tasks.node(p)["superseded_by"] for p in (p1, p2)} == {merged["id"]}


def test_rollback_and_its_bad_versions(store: Store, tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="Cart")["id"]
    milk = tasks.add_node(tid, title="milk", output="2", status="done", actor="u")["id"]
    tasks.supersede(milk, actor="u")
    assert tasks.node(milk)["status"] == "superseded"
    with pytest.raises(VersionError, match=r"versions 1\.\.2"):
        tasks.rollback(milk, 0, actor="u")
    with pytest.raises(VersionError, match="no version 5"):
        tasks.rollback(milk, 5, actor="u")
    with pytest.raises(VersionError, match="already at version 2"):
        tasks.rollback(milk, 2, actor="u")
    restored = tasks.rollback(milk, 1, actor="u")
    assert (restored["status"], restored["version"], restored["superseded_by"]) == ("done", 3, None)
    assert tasks.history(milk)[-1]["change"] == "rollback to v1"


def test_bad_input_is_specific_and_changes_nothing(store: Store, tasks: TaskTreeStore) -> None:
    tid = tasks.create_tree(owner="a", title="T")["id"]
    other = tasks.create_tree(owner="a", title="U")["id"]
    a = tasks.add_node(tid, title="A", actor="u")["id"]
    foreign = tasks.add_node(other, title="F", actor="u")["id"]
    before = _counts(store)
    with pytest.raises(NodeNotFound, match="no task node n999"):
        tasks.update(999, output="x", actor="u")
    with pytest.raises(NodeNotFound, match=f"n{foreign} in task tree t{tid}"):
        tasks.add_node(tid, title="B", depends_on=[a, foreign], actor="u")
    with pytest.raises(TreeNotFound, match="no task tree t404"):
        tasks.add_node(404, title="B", actor="u")
    with pytest.raises(TaskError, match="unknown task status 'finished'"):
        tasks.update(a, status="finished", actor="u")
    with pytest.raises(TaskError, match="unknown task status 'superseded'"):
        tasks.update(a, status="superseded", actor="u")
    with pytest.raises(TaskError, match="non-empty title"):
        tasks.add_node(tid, title="  ", actor="u")
    with pytest.raises(TaskError, match="root"):
        tasks.replace([tasks.tree(tid)["root_id"]], title="R", actor="u")
    tasks.update(a, status="done", actor="u")
    with pytest.raises(TaskError, match="from done to blocked"):
        tasks.update(a, status="blocked", actor="u")
    after_done = _counts(store)
    assert after_done[:4] == (before[0], before[1], before[2] + 1, before[3])


def test_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "aios.db"
    first = Store.open(path)
    tasks = TaskTreeStore(first.db)
    tid = tasks.create_tree(owner="chat", title="Trip")["id"]
    nid = tasks.add_node(tid, title="Hotel", output="Ritz", actor="u")["id"]
    tasks.update(nid, output="Hilton", actor="u")
    first.close()
    again = Store.open_read_only(path)
    assert again is not None
    reread = TaskTreeStore(again.db)
    assert reread.node(nid)["output"] == "Hilton" and len(reread.history(nid)) == 2
    assert reread.tree(tid)["active_id"] == nid
    again.close()


def _acyclic(edges: list[tuple[int, int]]) -> bool:
    """Kahn's algorithm, independent of the code under test."""
    nodes = {n for e in edges for n in e}
    indegree = {n: 0 for n in nodes}
    for _, dep in edges:
        indegree[dep] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for src, dep in edges:
            if src == n:
                indegree[dep] -= 1
                if indegree[dep] == 0:
                    ready.append(dep)
    return seen == len(nodes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=25))
def test_dependencies_stay_a_dag_whatever_is_asked(tmp_path_factory: pytest.TempPathFactory, asks: list) -> None:
    store = Store.open(tmp_path_factory.mktemp("dag") / "aios.db")
    try:
        tasks = TaskTreeStore(store.db)
        tid = tasks.create_tree(owner="a", title="T")["id"]
        ids = [tasks.add_node(tid, title=f"s{i}", actor="u")["id"] for i in range(6)]
        for a, b in asks:
            before = [tuple(r) for r in store.db.execute("SELECT node_id, depends_on FROM task_edges")]
            try:
                tasks.add_dependency(ids[a], ids[b], actor="u")
            except CycleError:  # refused only when it really closes a cycle, and then nothing changed
                assert a == b or not _acyclic([*before, (ids[a], ids[b])])
                assert [tuple(r) for r in store.db.execute("SELECT node_id, depends_on FROM task_edges")] == before
            edges = [tuple(r) for r in store.db.execute("SELECT node_id, depends_on FROM task_edges")]
            assert _acyclic(edges)
    finally:
        store.close()


def test_reads_from_another_thread_do_not_break_a_writers_transaction(store: Store) -> None:
    """The kernel reads a node on the event loop (task.show's access check) while the db pool writes on the
    same connection: unlocked, sqlite-utils' per-query savepoint is released inside the writer's transaction
    ("no such savepoint: sqlite_utils_query", the CI failure this guards)."""
    import threading

    tasks = TaskTreeStore(store.db, lock=store.lock)
    tid = tasks.create_tree(owner="a", title="T")["id"]
    node = tasks.add_node(tid, title="step", actor="u")["id"]
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        try:
            for i in range(300):
                tasks.update(node, output=f"v{i}", actor="u")
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    try:
        while not stop.is_set():
            assert tasks.node(node)["tree_id"] == tid
            tasks.history(node)
            reads += 1
    except BaseException as exc:
        errors.append(exc)
    writer.join()
    assert not errors, errors
    assert reads > 0 and tasks.node(node)["output"] == "v299"
