"""`aios fs …` end to end through click with no kernel running: every command runs in a kernel started for the
command (the scripted fake model: no model file is loaded), reads too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aios.cli import cli
from tests.unit._semfs_kit import write_corpus


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def fake_model(aios_home: Path) -> None:
    """Each change starts an in-process kernel: give it the scripted echo model, not the bundled GGUF."""
    aios_home.mkdir(exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout if code == 0 else result.stderr


def test_mount_search_history_rollback_check(runner: CliRunner, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    out = run(runner, "fs", "mount", str(root), "--name", "docs")
    assert "mounted docs" in out and "files/s" in out and "chunks/s" in out
    mounts = json.loads(run(runner, "fs", "mounts", "--json"))["mounts"]
    assert mounts[0]["files"] == 4 and mounts[0]["vectors_pending"] == 0
    hits = json.loads(run(runner, "fs", "search", "insects", "on", "my", "vegetables", "--json"))["results"]
    assert hits[0]["relpath"] == "garden.md" and hits[0]["score"] > 0 and "chunk" in hits[0]
    text = run(runner, "fs", "search", "aphids", "--mode", "keyword")
    assert "garden.md" in text and "Aphids" in text and "score" in text
    assert "no results" in run(runner, "fs", "search", "qqzzxx", "--mode", "keyword")
    assert json.loads(run(runner, "fs", "search", "bread", "--type", "code", "--mode", "keyword", "--json")) == {
        "query": "bread",
        "mode": "keyword",
        "results": [],
    }
    (root / "garden.md").write_text("# Garden\n\nOnly herbs this year.\n")
    run(runner, "fs", "index", str(root))
    versions = json.loads(run(runner, "fs", "history", str(root / "garden.md"), "--json"))["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert "+Only herbs" in run(runner, "fs", "diff", str(root / "garden.md"))
    assert "restored version 1" in run(runner, "fs", "rollback", str(root / "garden.md"), "--steps", "1")
    assert "Aphids" in (root / "garden.md").read_text()
    assert "Aphids" in run(runner, "fs", "cat", str(root / "garden.md"), "--version", "1")
    assert "garden.md" in run(runner, "fs", "ls", "docs")
    run(runner, "fs", "group", "bread", "baking", "--name", "baking", "-k", "1")
    assert "bread.md" in run(runner, "fs", "ls", "@baking")
    assert [v["name"] for v in json.loads(run(runner, "fs", "views", "--json"))["views"]] == ["baking"]
    assert "dropped @baking" in run(runner, "fs", "views", "--drop", "@baking")
    assert "no view named" in run(runner, "fs", "views", "--drop", "baking", code=2)
    run(runner, "fs", "join", str(root / "garden.md"), str(root / "recipes/bread.md"), "--into", str(root / "both.md"))
    assert (root / "both.md").read_text().startswith("## docs/garden.md")
    assert json.loads(run(runner, "fs", "check", "--json"))["ok"]


def test_errors_are_one_line_with_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    run(runner, "fs", "mount", str(root), "--no-embed")
    err = run(runner, "fs", "search", "x", "--mount", "nope", code=2)
    assert err.strip() == "Error: no mount named 'nope' (mounts: docs) (see `aios fs mounts`)"
    assert "not inside any mount" in run(runner, "fs", "history", str(tmp_path / "else.md"), code=2)
    assert "exactly one" in run(runner, "fs", "rollback", str(root / "garden.md"), code=2)
    assert "cannot read time" in run(runner, "fs", "search", "x", "--since", "yesterday-ish", code=2)
    assert "not a folder" in run(runner, "fs", "index", str(tmp_path / "missing"), code=2)
    assert "give a QUERY" in run(runner, "fs", "group", "--name", "v", code=2)
    assert len(run(runner, "fs", "rollback", str(root / "garden.md"), "--steps", "5", code=2).splitlines()) == 1
    # Vectors were not waited for at mount; each command's kernel embeds some while it runs (how many are left
    # depends on timing): check counts those left as pending, never as drift.
    report = json.loads(run(runner, "fs", "check", "--json"))
    assert report["ok"] and report["vectors_pending"] >= 0 and report["chunks"] > 0


def test_llm_commands_run_an_in_process_kernel(runner: CliRunner, aios_home: Path, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    run(runner, "fs", "mount", str(root), "--no-embed")
    out = json.loads(run(runner, "fs", "summarize", str(root / "garden.md"), "--json"))
    assert out["summary"].startswith("echo:") and out["files"] == 1
    assert json.loads(run(runner, "fs", "summarize", str(root / "garden.md"), "--json"))["cached"]
    merged = root / "notes" / "merged.md"
    run(runner, "fs", "join", str(root / "garden.md"), str(root / "notes/travel.txt"), "--into", str(merged), "--merge")
    assert merged.read_text().startswith("echo:")
    # The scripted model cannot follow a grammar: one clear line, not a traceback.
    err = run(runner, "fs", "ask", "delete", str(root / "garden.md"), code=1)
    assert len(err.strip().splitlines()) == 1 and "grammar" in err


def test_a_kernel_holding_the_index_gives_one_clear_line(runner: CliRunner, aios_home: Path, tmp_path: Path) -> None:
    from tests.unit._semfs_kit import open_fs

    root = write_corpus(tmp_path / "docs")
    holder = open_fs(aios_home)  # what a running kernel's semfs service holds
    try:
        holder.index(root)
        err = run(runner, "fs", "mount", str(tmp_path / "docs"), code=1)
        assert len(err.strip().splitlines()) == 1 and 'aios run files "…"' in err
        assert run(runner, "fs", "summarize", str(root / "garden.md"), code=1) == err
        # a read is a syscall too: with no kernel to answer it, the command's own kernel cannot open the index
        assert run(runner, "fs", "search", "aphids", "--mode", "keyword", code=1) == err
    finally:
        holder.close()
