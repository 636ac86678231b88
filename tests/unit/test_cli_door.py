"""`aios fs` through the one door: every command that changes files or the index is a syscall by the `user`
principal, checked and audited, whether a kernel serves the socket or the command starts one in-process.

Each test runs twice: against a daemon (a kernel serving a real Unix socket on its own thread, as `aios serve`
does) and with no kernel running (the command's own kernel, on the scripted fake model).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aios.cli import cli
from memory.store import Store
from tests.unit._semfs_kit import write_corpus
from tests.unit.test_semfs_daemon import Daemon, daemon

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    """Where the commands land: ``daemon`` is None when each command starts its own kernel."""

    daemon: Daemon | None

    @property
    def mode(self) -> str:
        return "in-process" if self.daemon is None else "daemon"

    def user_rows(self) -> list[dict[str, Any]]:
        """Every audit row of agent "user", oldest first (the daemon's writer flushed first)."""
        if self.daemon is not None:
            return self.daemon.kernel.audit_rows(agent="user", limit=100_000)
        store = Store.open_read_only()
        if store is None:
            return []
        try:
            return store.audit_rows(agent="user", limit=100_000)
        finally:
            store.close()


@pytest.fixture(autouse=True)
def fake_model(aios_home: Path) -> None:
    """A kernel started for a command loads the configured model: the scripted one here, never the GGUF."""
    aios_home.mkdir(exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')


@pytest.fixture(params=["daemon", "in-process"])
def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, aios_home: Path) -> Iterator[Rig]:
    if request.param == "daemon":
        with daemon(monkeypatch) as d:
            yield Rig(d)
    else:
        monkeypatch.setenv("AIOS_SOCKET", str(aios_home / "run" / "none.sock"))  # surely no daemon
        yield Rig(None)


def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result.stdout if code == 0 else result.stderr


def test_every_change_leaves_a_user_audit_row(rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memory.semfs import llm_ops

    root = write_corpus(tmp_path / "docs")
    garden, bread = root / "garden.md", root / "recipes" / "bread.md"

    async def fixed_plan(fs: Any, llm: Any, request: str) -> llm_ops.Plan:  # the fake model cannot plan
        return llm_ops.Plan(steps=[llm_ops.PlanStep(op="rollback", path=str(garden))])

    monkeypatch.setattr(llm_ops, "plan", fixed_plan)
    commands: list[tuple[str, tuple[str, ...], str | None]] = [
        ("fs.mount", ("fs", "mount", str(root), "--name", "docs"), None),
        ("fs.write", ("fs", "write", str(garden)), "# Garden\n\nOnly herbs this year.\n"),
        ("fs.index", ("fs", "index", str(root)), None),
        ("fs.rollback", ("fs", "rollback", str(garden), "--steps", "1"), None),
        ("fs.group", ("fs", "group", "sourdough", "--name", "baking", "--mode", "keyword"), None),
        ("fs.join", ("fs", "join", str(garden), str(bread), "--into", str(root / "both.md")), None),
        ("fs.summarize", ("fs", "summarize", str(garden)), None),
        ("fs.compare", ("fs", "compare", str(garden)), None),
        ("fs.run_plan", ("fs", "ask", "undo", "the", "garden", "--yes"), None),
        ("fs.check", ("fs", "check", "--rebuild"), None),
        ("fs.unmount", ("fs", "unmount", "docs"), None),
    ]
    missing = []
    for syscall, args, stdin in commands:
        if syscall == "fs.check":
            # A rebuild while the daemon's embedder still drains the outbox can leave orphan vectors (a race
            # in memory/semfs, not the door): rebuild on a settled index.
            _wait_for_vectors()
        before = len(rig.user_rows())
        run(*args, stdin=stdin)
        new = [r for r in rig.user_rows()[before:] if r["syscall"] == syscall]
        if not any(r["decision"] == "allow" and r["token_id"] == "frontend" for r in new):
            missing.append(syscall)
    assert missing == [], f"{rig.mode}: no allowed user audit row for {missing}"

    rows = rig.user_rows()
    writes = [r["resource"] for r in rows if r["syscall"] == "fs.write"]
    assert f"file:{garden} (write)" in writes
    assert any(r["syscall"] == "fs.ask" for r in rows)  # the plan was made under the user's llm grant too
    assert "Only herbs" in garden.read_text()  # the plan's rollback undid the first rollback
    assert (root / "both.md").read_text().startswith("## docs/garden.md")


def _wait_for_vectors(deadline_s: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + deadline_s
    while sum(m["vectors_pending"] for m in json.loads(run("fs", "mounts", "--json"))["mounts"]):
        assert time.monotonic() < deadline, "the embedder did not drain the outbox"
        time.sleep(0.05)


def test_reads_are_syscalls_with_or_without_a_running_kernel(rig: Rig, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    garden = root / "garden.md"
    run("fs", "mount", str(root), "--name", "docs", "--no-embed")
    run("fs", "write", str(garden), "--text", "# Garden\n\nOnly herbs.\n")
    before = len(rig.user_rows())
    reads = {
        "fs.search": ("fs", "search", "herbs", "--mode", "keyword", "--json"),
        "fs.ls": ("fs", "ls", "docs", "--json"),
        "fs.cat": ("fs", "cat", str(garden), "--version", "1"),
        "fs.history": ("fs", "history", str(garden), "--json"),
        "fs.diff": ("fs", "diff", str(garden)),
        "fs.mounts": ("fs", "mounts", "--json"),
        "fs.check": ("fs", "check", "--json"),
    }
    out = {syscall: run(*args) for syscall, args in reads.items()}
    assert json.loads(out["fs.search"])["results"][0]["relpath"] == "garden.md"
    assert "garden.md" in out["fs.ls"] and "Aphids" in out["fs.cat"] and "+Only herbs" in out["fs.diff"]
    assert [v["version"] for v in json.loads(out["fs.history"])["versions"]] == [1, 2]
    assert [m["name"] for m in json.loads(out["fs.mounts"])["mounts"]] == ["docs"]
    assert json.loads(out["fs.check"])["ok"]
    audited = {r["syscall"] for r in rig.user_rows()[before:]}
    assert set(reads) <= audited  # checked and audited in the kernel, like the changes, either way


BAD: list[tuple[tuple[str, ...], str]] = [
    (("fs", "write", "{outside}", "--text", "hi"), "not inside any mount"),
    (("fs", "rollback", "{garden}"), "exactly one"),
    (("fs", "rollback", "{garden}", "--at", "yesterday-ish"), "cannot read time"),
    (("fs", "rollback", "{garden}", "--steps", "5"), ""),
    (("fs", "mount", "{missing}"), "not a folder"),
    (("fs", "index", "{missing}"), "not a folder"),
    (("fs", "unmount", "nosuch"), "no mount 'nosuch'"),
    (("fs", "group", "--name", "v"), "give a QUERY"),
    (("fs", "join", "{garden}", "--into", "{root}/one.md"), "sources"),
    (("fs", "compare", "{outside}"), "not inside any mount"),
]


@pytest.mark.parametrize(("args", "says"), BAD, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    rig: Rig, tmp_path: Path, args: tuple[str, ...], says: str
) -> None:
    root = write_corpus(tmp_path / "docs")
    run("fs", "mount", str(root), "--name", "docs", "--no-embed")
    where = {"root": str(root), "garden": str(root / "garden.md"), "missing": str(tmp_path / "missing")}
    where["outside"] = str(tmp_path / "elsewhere" / "x.md")

    def state() -> tuple[Any, ...]:
        files = sorted(
            (str(p), p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file() and "aios-home" not in p.parts
        )
        mounts = [(m["name"], m["files"], m["chunks"]) for m in json.loads(run("fs", "mounts", "--json"))["mounts"]]
        versions = json.loads(run("fs", "history", where["garden"], "--json"))["versions"]
        return files, mounts, len(versions)

    before = state()
    err = run(*(a.format(**where) for a in args), code=2)
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ") and says in err, err
    assert state() == before


def test_a_search_answered_by_the_daemon_imports_no_index_or_kernel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The start-up cost of `aios fs search` with `aios serve` up is the CLI's own: no chromadb, onnxruntime,
    kernel or semantic-FS module is imported in the command's process (nor httpx: the client is stdlib; nor
    rich: results render with click)."""
    root = write_corpus(tmp_path / "docs")
    with daemon(monkeypatch):
        run("fs", "mount", str(root), "--name", "docs", "--no-embed")
        done = _probe_search()
    assert done.returncode == 0, done.stderr
    *shown, loaded = done.stdout.strip().splitlines()
    assert "garden.md" in "\n".join(shown)
    assert loaded == "[]"


def _probe_search() -> subprocess.CompletedProcess[str]:
    probe = (
        "import sys\n"
        "from aios.cli import main\n"
        "try:\n"
        "    main(['fs', 'search', 'aphids', '--mode', 'keyword'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = ('chromadb', 'onnxruntime', 'tokenizers', 'llama_cpp', 'httpx', 'rich', 'memory', 'tools', 'mcp')\n"
        "light = {'kernel', 'kernel.client', 'kernel.connect'}  # the door (stdlib HTTP) is all a front end loads\n"
        "found = {m for m in sys.modules for h in heavy if m == h or m.startswith(h + '.')}\n"
        "found |= {m for m in sys.modules if m.startswith('kernel') and m not in light}\n"
        "print(sorted(found))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
