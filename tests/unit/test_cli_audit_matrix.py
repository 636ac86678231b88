"""Every CLI command that touches files, tools, memory or processes leaves an audit row of agent "user", with
a running kernel (`aios serve`, started here as a real subprocess) and without one (each command's own
kernel). The commands run in order against one home: a corpus mounted, files written and rolled back, a chat
run (which files a task tree), tools listed and called, a plan run, process control.

Both kernels load the scripted fake model (config.toml), never the GGUF.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aios.cli import cli
from tests.mcp_servers import slow_server_spec
from tests.unit._semfs_kit import write_corpus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["serve", "in-process"])
def kernel_mode(request: pytest.FixtureRequest, aios_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    aios_home.mkdir(parents=True, exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    (aios_home / "mcp.json").write_text(json.dumps({"mcpServers": {"slow": slow_server_spec()}}))
    _seed_task_tree()
    sock_dir = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp"))  # AF_UNIX paths must stay short
    monkeypatch.setenv("AIOS_SOCKET", str(sock_dir / "k.sock"))
    if request.param == "in-process":
        try:
            yield "in-process"
        finally:
            shutil.rmtree(sock_dir, ignore_errors=True)
        return
    env = {**os.environ, "AIOS_HOME": str(aios_home), "AIOS_SOCKET": str(sock_dir / "k.sock"), "PYTHONPATH": str(REPO)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "aios", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for_daemon(daemon)
        yield "serve"
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)


def _seed_task_tree() -> None:
    """t1 with steps n1 (its root) and n2, as an agent left them (written before any kernel opens the store)."""
    from memory.store import Store
    from memory.tasktree import TaskTreeStore

    store = Store.open()
    try:
        tasks = TaskTreeStore(store.db)
        tree = tasks.create_tree(owner="chat", title="Plan a trip to Lisbon", pid=1)
        tasks.add_node(tree["id"], title="Hotel", output="Alfama", actor="agent:chat#1")
    finally:
        store.close()


def _wait_for_daemon(daemon: subprocess.Popen[str]) -> None:
    from kernel.client import daemon_client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise AssertionError(
                f"aios serve exited {daemon.returncode}: {daemon.stderr.read() if daemon.stderr else ''}"
            )
        client = daemon_client()
        if client is not None:
            client.close()
            return
        time.sleep(0.05)  # polling with a deadline, not waiting a fixed time
    raise AssertionError("aios serve did not answer on its socket within 60 s")


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
    return result.stdout if code == 0 else result.stderr


def user_rows() -> list[dict[str, Any]]:
    """Agent "user"'s audit rows, oldest first, read as `aios audit` reads them (the daemon's, else the store's)."""
    rows = json.loads(run("audit", "--agent", "user", "-n", "100000", "--json"))["rows"]
    return sorted(rows, key=lambda r: r["id"])


def test_every_command_leaves_a_user_audit_row(kernel_mode: str, tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "docs")
    garden, bread = str(root / "garden.md"), str(root / "recipes" / "bread.md")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"id": "t", "tool": "time.now", "args": {"timezone": "UTC"}}]}))
    other = tmp_path / "other-mcp.json"  # servers tried before they are added (`--mcp-config`)
    other.write_text(json.dumps({"mcpServers": {"slow": slow_server_spec()}}))
    own = tmp_path / "own-servers-plan.json"  # a plan file naming its own servers
    step = {"id": "e", "tool": "slow.echo", "args": {"text": "hi"}}
    own.write_text(json.dumps({"steps": [step], "servers": {"slow": slow_server_spec()}}))

    # (the command, the syscall its audit row names); in order, each may build on the ones before it
    commands: list[tuple[tuple[str, ...], str]] = [
        (("fs", "mount", str(root), "--name", "docs", "--no-embed"), "fs.mount"),
        (("fs", "index", str(root), "--no-embed"), "fs.index"),
        (("fs", "mounts", "--json"), "fs.mounts"),
        (("fs", "search", "aphids", "--mode", "keyword", "--json"), "fs.search"),
        (("fs", "ls", "docs"), "fs.ls"),
        (("fs", "cat", garden), "fs.cat"),
        (("fs", "write", garden, "--text", "# Garden\n\nOnly herbs.\n"), "fs.write"),
        (("fs", "history", garden), "fs.history"),
        (("fs", "diff", garden), "fs.diff"),
        (("fs", "rollback", garden, "--steps", "1"), "fs.rollback"),
        (("fs", "group", "aphids", "--name", "pests", "--mode", "keyword"), "fs.group"),
        (("fs", "views", "--json"), "fs.views"),
        (("fs", "views", "--drop", "pests"), "fs.views"),
        (("fs", "summarize", bread), "fs.summarize"),
        (("fs", "compare", garden, "1", "0"), "fs.compare"),
        (("fs", "join", garden, bread, "--into", str(root / "both.md")), "fs.join"),
        (("fs", "check", "--json"), "fs.check"),
        (("run", "chat", "Plan a trip to Lisbon"), "proc.spawn"),
        (("tasks", "tree", "--json"), "task.trees"),
        (("tasks", "tree", "t1"), "task.get"),
        (("tasks", "show", "n1"), "task.show"),
        (("tasks", "prompt", "t1"), "task.prompt"),
        (("mem", "namespaces"), "mem.namespaces"),
        (("mem", "ls", "chat"), "mem.list"),
        (("mem", "search", "chat", "Lisbon"), "mem.search"),
        (("mcp", "tools", "--json"), "tool.list"),
        (("mcp", "tools", "--search", "what time is it"), "tool.search"),
        (("mcp", "call", "time.now", '{"timezone": "UTC"}'), "tool.call"),
        (("mcp", "test", "slow"), "tool.test"),
        (("plan", "run", str(plan), "--json"), "proc.spawn"),
        (("mcp", "test", "slow", "--mcp-config", str(other)), "tool.try"),
        (("mcp", "tools", "--mcp-config", str(other), "--json"), "tool.try"),
        (("mcp", "call", "slow.add", '{"a": 1, "b": 2}', "--mcp-config", str(other)), "tool.try"),
        (("plan", "run", str(own), "--json"), "tool.try"),
        (("fs", "unmount", "docs"), "fs.unmount"),
    ]
    missing: dict[str, list[str]] = {}
    seen = len(user_rows())
    for args, syscall in commands:
        out = run(*args)
        rows = user_rows()
        new = [r["syscall"] for r in rows[seen:] if r["decision"] == "allow"]
        seen = len(rows)
        if syscall not in new:
            missing[" ".join(args[:2])] = new
        if args[0] == "run":
            assert "Plan a trip to Lisbon" in out  # the fake model echoes: the run really streamed
    assert not missing, f"commands without their audit row ({kernel_mode}): {missing}"


def test_process_control_leaves_audit_rows_and_needs_a_kernel(kernel_mode: str) -> None:
    if kernel_mode == "in-process":  # no kernel, no process to control: one line, nothing recorded
        for args in (("kill", "1"), ("suspend", "1"), ("resume", "1"), ("nice", "1", "background")):
            assert "no kernel is running" in run(*args, code=1)
        assert user_rows() == []
        return
    from kernel.client import daemon_client

    client = daemon_client()
    assert client is not None
    try:
        pid = int(client.request("POST", "/v1/spawn", {"agent": "chat", "goal": "", "interactive": True})["pid"])
    finally:
        client.close()
    for args in (("nice", str(pid), "background"), ("suspend", str(pid)), ("resume", str(pid)), ("kill", str(pid))):
        run(*args)
    assert "no process with pid 999" in run("kill", "999", code=2)
    rows = [(r["syscall"], r["resource"], r["decision"]) for r in user_rows()]
    assert ("proc.spawn", "chat", "allow") in rows
    control = [r for r in rows if r[0] in {f"socket:/v1/{w}" for w in ("nice", "suspend", "resume", "kill")}]
    assert control == [
        ("socket:/v1/nice", str(pid), "allow"),
        ("socket:/v1/suspend", str(pid), "allow"),
        ("socket:/v1/resume", str(pid), "allow"),
        ("socket:/v1/kill", str(pid), "allow"),
        ("socket:/v1/kill", "", "deny"),
    ]
