"""Real watchdog events feeding the index, and a kernel killed mid-index (SIGKILL) reconciled on restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from memory.semfs import SemFS
from memory.semfs.check import check
from tests.unit._semfs_kit import chunk_rows, open_fs, write_corpus

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def relpaths(fs: SemFS, query: str) -> list[str]:
    return [h.relpath for h in fs.search(query, mode="keyword")]


@pytest.fixture
def watched(aios_home: Path, tmp_path: Path) -> tuple[SemFS, Path]:
    root = write_corpus(tmp_path / "docs")
    fs = open_fs(aios_home, debounce_s=0.1)
    fs.mount(root)
    fs.start_background()
    yield fs, root
    fs.close()


def test_watcher_creates_modifies_deletes_and_moves(watched: tuple[SemFS, Path]) -> None:
    fs, root = watched
    assert relpaths(fs, "sourdough") == ["recipes/bread.md"]  # reconciled at start
    (root / "new.md").write_text("# Owls\n\nBarn owls hunt at dusk.\n")
    wait_for(lambda: relpaths(fs, "owls") == ["new.md"])
    (root / "new.md").write_text("# Owls\n\nBarn owls hunt voles at dusk.\n")
    wait_for(lambda: relpaths(fs, "voles") == ["new.md"])
    assert [v["source"] for v in fs.history(root / "new.md")] == ["watch", "watch"]
    kept = {r["id"] for r in chunk_rows(fs) if r["relpath"] == "recipes/bread.md"}
    os.rename(root / "recipes" / "bread.md", root / "recipes" / "loaf.md")
    wait_for(lambda: relpaths(fs, "sourdough") == ["recipes/loaf.md"])
    assert {r["id"] for r in chunk_rows(fs) if r["relpath"] == "recipes/loaf.md"} == kept  # moved, not re-embedded
    (root / "garden.md").unlink()
    wait_for(lambda: relpaths(fs, "aphids") == [])
    assert fs.history(root / "garden.md")[-1]["deleted"]
    os.rename(root / "notes", root / "archive")  # a whole folder moves
    wait_for(lambda: relpaths(fs, "passport") == ["archive/travel.txt"])
    (root / ".gitignore").write_text("secret/\n")
    (root / "secret").mkdir()
    (root / "secret" / "pw.txt").write_text("hunter2 is the password")
    (root / "visible.txt").write_text("flamingo")
    wait_for(lambda: relpaths(fs, "flamingo") == ["visible.txt"])
    assert relpaths(fs, "hunter2") == []
    wait_for(lambda: fs.vectors.pending() == 0, timeout=60)  # the background embedder catches up
    report = check(fs)
    assert report["ok"], report


def test_mount_folder_removed_while_watched(watched: tuple[SemFS, Path], tmp_path: Path) -> None:
    fs, root = watched
    os.rename(root, tmp_path / "moved-away")
    time.sleep(0.5)
    stats = fs.reconcile(fs.find_mount("docs"))
    assert stats["missing_root"] and not fs.mounts()[0]["present"]
    assert relpaths(fs, "sourdough") == ["recipes/bread.md"]  # history and index kept


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from memory.semfs import SemFS
    home, root, phase = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    fs = SemFS(db_path=home / "aios.db", chroma_path=home / "chroma")
    if phase == "index":
        def progress(i, n, rel):
            if i == 20:
                print("midway", flush=True)
            time.sleep(0.02)
        fs.index(root, progress=progress)
    else:
        def progress(done, total):
            print("embedding", flush=True)
            time.sleep(0.5)
        fs.embed_pending(progress=progress)
    print("finished", flush=True)
    """
)


def _run_and_kill(home: Path, root: Path, phase: str, marker: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), str(root), phase],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        for line in child.stdout:
            if line.strip() == marker or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_kill_during_indexing_and_embedding_then_restart_reconciles(aios_home: Path, tmp_path: Path) -> None:
    files = {
        f"n{i:03d}.md": f"# Note {i}\n\nThe keyword kiwi{i} appears once.\n\n## More\n\nsecond part {i}\n"
        for i in range(60)
    }
    root = write_corpus(tmp_path / "docs", files)
    _run_and_kill(aios_home, root, "index", "midway")
    fs = open_fs(aios_home)
    try:
        partial = fs.db.scalar("SELECT count(*) FROM semfs_files")
        assert 20 <= partial < 60  # killed mid-way
        # Each indexed file is whole: 2 chunks, 1 version.
        assert fs.db.scalar("SELECT count(*) FROM semfs_chunks") == 2 * partial
        fs.start_background(watch=False, embed=False)  # what the kernel does at boot: reconcile every mount
        assert fs.db.scalar("SELECT count(*) FROM semfs_files") == 60
        assert fs.db.scalar("SELECT count(*) FROM semfs_chunks") == 120
        assert fs.db.scalar("SELECT count(*) FROM semfs_versions") == 60
        assert relpaths(fs, "kiwi59") == ["n059.md"]
    finally:
        fs.close()
    _run_and_kill(aios_home, root, "embed", "embedding")  # killed after the first batch of vectors
    fs = open_fs(aios_home)
    try:
        assert 0 < fs.vectors.pending() < 120
        fs.embed_pending()
        report = check(fs)
        assert report["ok"] and report["vectors"] == 120, report
    finally:
        fs.close()
