"""`aios fs` while a kernel serves the socket: every command runs in that kernel (it owns the index and its
writer lock) as an `fs.*` syscall for the user, audited, and renders as it does with no kernel running."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from click.testing import CliRunner

from aios.cli import cli
from aios.client import DaemonClient
from aios.config import Config
from aios.errors import PermissionDenied, UsageError
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from kernel.server import serve_socket
from tests.unit._semfs_kit import write_corpus


@pytest.fixture(autouse=True)
def fake_model(aios_home: Path) -> None:
    """With no daemon, a change starts a kernel in the command: the scripted model, not the bundled GGUF."""
    aios_home.mkdir(exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')


@dataclass
class Daemon:
    kernel: Any
    socket: Path
    token: str


@asynccontextmanager
async def _serve(sock: Path) -> Any:
    config = Config()
    config.llm.backend = "fake"
    async with open_kernel(config, runtime=FakeBackend()) as kernel:
        async with serve_socket(kernel, sock) as (path, token):
            yield Daemon(kernel, path, token)


@contextmanager
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemon]:
    """A kernel on its own event loop and thread, serving a real Unix socket, as `aios serve` would."""
    sock_dir = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp"))  # AF_UNIX paths must stay short
    monkeypatch.setenv("AIOS_SOCKET", str(sock_dir / "k.sock"))
    try:
        with start_blocking_portal() as portal, portal.wrap_async_context_manager(_serve(sock_dir / "k.sock")) as d:
            yield d
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout if code == 0 else result.stderr


def user_rows(d: Daemon, syscall: str) -> list[dict[str, Any]]:
    return [r for r in d.kernel.audit_rows(agent="user", limit=1000) if r["syscall"] == syscall]


def test_mount_index_search_write_rollback_through_the_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    garden = root / "garden.md"
    with daemon(monkeypatch) as d:
        out = run("fs", "mount", str(root), "--name", "docs")  # locally this would be WriterBusy
        assert out.startswith(f"mounted docs at {root}") and "4 files (4 indexed" in out and "files/s" in out
        [row] = user_rows(d, "fs.mount")
        assert row["token_id"] == "frontend" and row["decision"] == "allow" and str(root) in row["resource"]
        mounts = json.loads(run("fs", "mounts", "--json"))["mounts"]  # reads are syscalls in the kernel too
        assert [(m["name"], m["files"]) for m in mounts] == [("docs", 4)]
        text = run("fs", "search", "aphids", "--mode", "keyword")
        assert "garden.md" in text and "Aphids" in text
        assert user_rows(d, "fs.mounts") and user_rows(d, "fs.search")[-1]["decision"] == "allow"

        out = run("fs", "write", str(garden), "--json", stdin="# Garden\n\nOnly herbs this year.\n")
        assert json.loads(out) == {"path": str(garden), "outcome": "indexed"}
        assert garden.read_text() == "# Garden\n\nOnly herbs this year.\n"
        assert user_rows(d, "fs.write")[0]["resource"] == f"file:{garden} (write)"
        hits = json.loads(run("fs", "search", "herbs", "--mode", "keyword", "--json"))["results"]
        assert hits[0]["relpath"] == "garden.md"

        (root / "recipes" / "bread.md").write_text("# Rye\n\nRye needs a longer proof.\n")
        stats = json.loads(run("fs", "index", str(root), "--name", "ignored-once-mounted", "--json"))
        # (the kernel's watcher may have indexed the change first: then this pass finds it unchanged)
        assert stats["files"] == 4 and stats["indexed"] + stats["unchanged"] == 4 and "vectors_pending" in stats
        assert "rye" in run("fs", "search", "proof", "--mode", "keyword").lower()
        other = write_corpus(tmp_path / "more", {"a.md": "# Kiln\n\nFire the kiln slowly.\n"})
        assert run("fs", "index", str(other), "--name", "pottery").startswith(f"indexed {other}\n  1 files")
        assert [m["name"] for m in json.loads(run("fs", "mounts", "--json"))["mounts"]] == ["docs", "pottery"]

        versions = json.loads(run("fs", "history", str(garden), "--json"))["versions"]
        assert [v["version"] for v in versions] == [1, 2]
        assert f"restored version 1 of {garden}" in run("fs", "rollback", str(garden), "--steps", "1")
        assert "Aphids" in garden.read_text()
        assert len(json.loads(run("fs", "history", str(garden), "--json"))["versions"]) == 3

        assert "view @baking: 1 files" in run("fs", "group", "rye", "--name", "baking", "-k", "1", "--mode", "keyword")
        assert json.loads(run("fs", "check", "--json"))["ok"]
        assert "unmounted docs" in run("fs", "unmount", "docs")
        assert "unmounted pottery" in run("fs", "unmount", str(other))
        assert json.loads(run("fs", "mounts", "--json"))["mounts"] == []
        assert garden.exists()  # the folder itself is untouched


BAD = [
    ("fs", "unmount", "nosuch"),
    ("fs", "rollback", "/tmp/aios-not-mounted/x.txt", "--steps", "1"),
    ("fs", "write", "/tmp/aios-not-mounted/x.txt", "--text", "hi"),
    ("fs", "group", "--name", "v"),
]


def test_bad_input_gets_the_same_one_line_error_as_locally(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    local = [CliRunner().invoke(cli, list(args)) for args in BAD]
    assert all(r.exit_code == 2 for r in local), [(r.exit_code, r.stderr) for r in local]
    with daemon(monkeypatch) as d:
        remote = [CliRunner().invoke(cli, list(args)) for args in BAD]
        for args, here, there in zip(BAD, local, remote, strict=True):
            assert (there.exit_code, there.stderr) == (here.exit_code, here.stderr), args
            assert len(there.stderr.strip().splitlines()) == 1
        assert "no mount 'nosuch'" in remote[0].stderr
        denied = [r for r in d.kernel.audit_rows(agent="user", denied_only=True) if r["syscall"] == "socket:/v1/fs"]
        assert len(denied) == 3 and "no mount 'nosuch'" in denied[0]["reason"]  # group fails before sending
        assert not Path("/tmp/aios-not-mounted/x.txt").exists()
        client = DaemonClient(d.socket)
        with pytest.raises(UsageError, match=r"unknown syscall 'fs\.nope'"):
            client.fs("fs.nope")
        with pytest.raises(UsageError, match="invalid request: syscall"):
            client.request("POST", "/v1/fs", {"syscall": "proc.kill", "payload": {"pid": 1}})
        with pytest.raises(UsageError, match=r"fs\.write: invalid request: text"):
            client.fs("fs.write", path="/tmp/x")


def test_a_process_token_cannot_use_the_fs_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    with daemon(monkeypatch) as d:
        front = DaemonClient(d.socket)
        agent = next(iter(front.agents()))
        spawned = front.request("POST", "/v1/spawn", {"agent": agent, "interactive": True, "token": True})
        proc = DaemonClient(d.socket, spawned["token"])
        with pytest.raises(PermissionDenied, match="/v1/fs needs the front-end token"):
            proc.fs("fs.mount", path=str(root), name="docs")
        assert json.loads(run("fs", "mounts", "--json"))["mounts"] == []
        [row] = [r for r in d.kernel.audit_rows(denied_only=True) if r["syscall"] == "socket:/v1/fs"]
        assert row["pid"] == spawned["pid"] and row["token_id"] not in ("", "frontend")


def test_llm_commands_and_ask_confirm_on_the_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from memory.semfs import llm_ops

    root = write_corpus(tmp_path / "docs")
    garden = root / "garden.md"
    with daemon(monkeypatch) as d:
        run("fs", "mount", str(root))
        run("fs", "join", str(garden), str(root / "notes/travel.txt"), "--into", str(root / "both.md"))
        assert (root / "both.md").read_text().startswith("## docs/garden.md")
        summary = json.loads(run("fs", "summarize", str(garden), "--json"))
        assert summary["target"] == str(garden) and summary["files"] == 1 and summary["summary"]
        assert user_rows(d, "fs.summarize") and user_rows(d, "fs.join")
        garden.write_text("# Garden\n\nOnly herbs.\n")
        run("fs", "index", str(root))

        # The plan comes from the kernel (the FakeBackend cannot follow a grammar: a fixed plan stands in).
        steps = [llm_ops.PlanStep(op="search", query="herbs"), llm_ops.PlanStep(op="rollback", path=str(garden))]

        async def fixed_plan(fs: Any, llm: Any, request: str) -> llm_ops.Plan:
            return llm_ops.Plan(steps=steps)

        monkeypatch.setattr(llm_ops, "plan", fixed_plan)
        out = run("fs", "ask", "undo", "the", "garden", "change", stdin="n\n")
        assert "plan:\n  1. search {'query': 'herbs'}\n  2. rollback" in out and "[destructive]" in out
        assert "rollback " + str(garden) + ": skipped" in out and "Only herbs" in garden.read_text()
        assert not user_rows(d, "fs.run_plan") or all(
            "(write)" not in r["resource"] for r in user_rows(d, "fs.run_plan")
        )
        result = json.loads(run("fs", "ask", "undo", "it", "--yes", "--json"))
        assert [r["status"] for r in result["results"]] == ["ok", "ok"] and "Aphids" in garden.read_text()
        assert result["plan"]["steps"][1]["op"] == "rollback"
