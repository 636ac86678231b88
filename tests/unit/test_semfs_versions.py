"""Versions: content-addressed history, diff, rollback by steps and by time (itself a version), views, join."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from aios.errors import UsageError
from memory.semfs import NotIndexed, SemFS
from memory.semfs.views import cluster_view, concat_files, drop_view, query_view, views
from tests.unit._semfs_kit import open_fs, write_corpus


@pytest.fixture
def fs(aios_home: Path) -> SemFS:
    sem = open_fs(aios_home)
    yield sem
    sem.close()


def test_history_diff_and_rollback_round_trip(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs.index(root)
    todo = root / "todo.md"
    for text in ("buy milk\n", "buy milk\ncall mum\n", "call mum\n"):
        fs.write(todo, text.encode())
    history = fs.history(todo)
    assert [v["version"] for v in history] == [1, 2, 3] and {v["source"] for v in history} == {"write"}
    assert "-buy milk" in fs.diff(todo) and "+call mum" in fs.diff(todo, 1, 2)
    assert fs.cat(todo, version=1) == b"buy milk\n"
    result = fs.rollback(todo, steps=2)
    assert result == {"restored": 1, "changed": True, "path": str(todo)}
    assert todo.read_text() == "buy milk\n"
    assert fs.history(todo)[-1]["source"] == "rollback"  # the rollback is a version...
    fs.rollback(todo, steps=1)  # ...so it can be undone
    assert todo.read_text() == "call mum\n"
    assert [h.relpath for h in fs.search("mum", mode="keyword")] == ["todo.md"]  # re-indexed through the write path
    # Equal content is stored once.
    assert fs.db.scalar("SELECT count(*) FROM semfs_blobs WHERE sha256 = ?", (history[0]["sha256"],)) == 1


def test_rollback_by_time_and_of_a_deleted_file(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs.index(root)
    note = root / "garden.md"
    original = note.read_bytes()
    time.sleep(0.05)
    mark = time.time()
    time.sleep(0.05)
    fs.write(note, b"# Garden\n\nall replanted\n")
    fs.delete(note)
    assert not note.exists() and fs.history(note)[-1]["deleted"]
    assert fs.search("aphids", mode="keyword") == []
    fs.rollback(note, at=mark)
    assert note.read_bytes() == original
    assert fs.search("aphids", mode="keyword")[0].relpath == "garden.md"
    fs.rollback(note, steps=1)  # back to the deletion: the file goes again
    assert not note.exists()


def test_rollback_bad_requests_change_nothing(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs.index(root)
    note = root / "garden.md"
    before = note.read_bytes()
    with pytest.raises(UsageError, match="exactly one"):
        fs.rollback(note)
    with pytest.raises(UsageError, match="cannot go back 3"):
        fs.rollback(note, steps=3)
    with pytest.raises(UsageError, match="no version from that time"):
        fs.rollback(note, at=time.time() - 3600)
    with pytest.raises(NotIndexed, match="no versions"):
        fs.rollback(root / "never.md", steps=1)
    with pytest.raises(UsageError, match="no version 9"):
        fs.diff(note, 9, 0)
    assert note.read_bytes() == before and len(fs.history(note)) == 1


def test_views_and_join(fs: SemFS, tmp_path: Path) -> None:
    extra = {
        f"pets/cat{i}.md": f"# Cat {i}\n\nMy cat number {i} sleeps on the warm sofa and purrs.\n" for i in range(3)
    }
    extra |= {
        f"money/tax{i}.md": f"# Tax {i}\n\nThe income tax return for year {2020 + i} is filed in April.\n"
        for i in range(3)
    }
    root = write_corpus(tmp_path / "docs", extra)
    fs.index(root)
    fs.embed_pending()
    made = query_view(fs, "income tax return", "taxes", k=3)
    assert made["files"] == 3
    assert sorted(r["relpath"] for r in fs.ls("@taxes")) == ["money/tax0.md", "money/tax1.md", "money/tax2.md"]
    from memory.semfs import Filters

    in_view = {r["relpath"] for r in fs.ls("@taxes")}
    assert {h.relpath for h in fs.search("filed", filters=Filters(view="taxes"))} <= in_view
    assert {h.relpath for h in fs.search("filed", filters=Filters(glob="@taxes"))} <= in_view
    assert fs.search("sofa", filters=Filters(glob="@taxes"), mode="keyword") == []  # cats are not in the view
    clusters = cluster_view(fs, "topics", 2)
    assert clusters["files"] == 6 and len(clusters["groups"]) == 2
    groups = {}
    for row in fs.ls("@topics"):
        groups.setdefault(row["grp"], set()).add(row["relpath"].split("/")[0])
    assert sorted(map(sorted, groups.values())) == [["money"], ["pets"]]
    assert {v["name"] for v in views(fs)} == {"taxes", "topics"}
    joined = concat_files(fs, ["@taxes"])
    fs.write(root / "all-taxes.md", joined.encode(), source="join")
    text = (root / "all-taxes.md").read_text()
    assert text.count("## docs/money/tax") == 3 and "year 2021" in text
    with pytest.raises(UsageError, match="at least two"):
        concat_files(fs, [str(root / "money/tax0.md")])
    with pytest.raises(UsageError, match="no files match"):
        query_view(fs, "zzzqqq", "empty", mode="keyword")
    with pytest.raises(UsageError, match="must be letters"):
        query_view(fs, "tax", "bad name!")
    drop_view(fs, "taxes")
    with pytest.raises(NotIndexed):
        fs.ls("@taxes")


def test_unmount_keeps_the_version_history_for_a_later_mount(fs: SemFS, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    fs.index(root, name="docs")
    target = root / "garden.md"
    original = target.read_bytes()
    fs.write(target, b"v2\n")
    fs.write(target, b"v3\n")
    assert len(fs.history(target)) == 3
    out = fs.unmount("docs")
    assert out["versions_kept"] >= 3
    with pytest.raises(NotIndexed):
        fs.history(target)
    fs.index(root, name="docs")  # the same folder again: its history is back, nothing duplicated
    assert [v["size"] for v in fs.history(target)] == [len(original), 3, 3]
    assert fs.cat(target, version=1) == original
    fs.rollback(target, steps=2)
    assert target.read_bytes() == original
