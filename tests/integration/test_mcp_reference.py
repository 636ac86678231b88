"""The MCP reference servers, for real: server-everything and server-filesystem (npm, installed by `make test`
into .venv/mcp-npm) and mcp-server-git / mcp-server-time (PyPI, the `test` extra). Nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from tools.config import parse_servers
from tools.host import McpHost

pytestmark = [pytest.mark.mcp_servers, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
NPM = ROOT / ".venv" / "mcp-npm" / "node_modules" / "@modelcontextprotocol"
BIN = Path(sys.executable).parent


def npm_server(package: str) -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the npm MCP reference servers cannot run")
    entry = NPM / package / "dist" / "index.js"
    if not entry.exists():
        pytest.fail(f"{entry} is missing: run `make test` (it installs the npm reference servers)")
    return str(entry)


def everything() -> dict[str, Any]:
    return {"command": "node", "args": [npm_server("server-everything")]}


@asynccontextmanager
async def host_with(**servers: dict[str, Any]) -> AsyncIterator[McpHost]:
    async with McpHost(parse_servers({"mcpServers": servers}), connect_timeout=30) as host:
        yield host


def git_repo(path: Path) -> Path:
    path.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    (path / "README.md").write_text("hello\n")
    for cmd in (["init", "-q"], ["add", "README.md"], ["commit", "-q", "-m", "first commit"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, env=env)
    (path / "README.md").write_text("hello again\n")
    return path


async def test_everything_connect_list_call_progress_and_cancel() -> None:
    with anyio.fail_after(60):
        async with host_with(everything=everything()) as host:
            await host.start_all()
            info = host.servers()[0]
            assert info["state"] == "ready" and info["tools"] >= 10 and info["prompts"] >= 1 and info["resources"] >= 1
            assert (await host.call("everything.echo", {"message": "hi"})).text == "Echo: hi"
            total = await host.call("everything.get-sum", {"a": 2, "b": 40})
            assert not total.is_error and "42" in total.text
            seen: list[float] = []

            async def on_progress(value: float, total: float | None, message: str | None) -> None:
                seen.append(value)

            op = "everything.trigger-long-running-operation"
            done = await host.call(op, {"duration": 0.9, "steps": 3}, timeout=0.6, progress=on_progress)
            assert not done.is_error, done.text  # 0.9 s > 0.6 s timeout: progress kept it alive
            assert seen == [1, 2, 3]
            hung = await host.call(op, {"duration": 30, "steps": 1}, timeout=0.5)
            assert hung.error_kind == "timeout"
            assert (await host.call("everything.echo", {"message": "after"})).text == "Echo: after"
            bad = await host.call("everything.get-sum", {"a": "two", "b": 1})
            assert bad.error_kind == "invalid_args" and "a: 'two' is not of type 'number'" in bad.text


def _children_matching(text: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and text in cmdline:
            found.append(int(stat.parent.name))
    return found


async def test_everything_killed_mid_call_is_survived() -> None:
    with anyio.fail_after(60):
        async with host_with(everything=everything()) as host:
            await host.start_all()
            results: list[Any] = []

            async def long_call() -> None:
                results.append(
                    await host.call("everything.trigger-long-running-operation", {"duration": 20, "steps": 20})
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_call)
                await anyio.sleep(0.5)
                pids = _children_matching("server-everything")
                assert pids, "the server process was not found"
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
            assert results[0].is_error and results[0].error_kind == "unavailable"
            after = await host.call("everything.echo", {"message": "back"})
            assert after.text == "Echo: back" and host.owners["everything"].restarts >= 1


async def test_filesystem_server(tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    spec = {"command": "node", "args": [npm_server("server-filesystem"), str(root)]}
    with anyio.fail_after(60):
        async with host_with(files=spec) as host:
            wrote = await host.call("files.write_file", {"path": str(root / "a.txt"), "content": "alpha"})
            assert not wrote.is_error, wrote.text
            assert host.catalog.get("files.write_file").side_effect == "destructive"
            read = await host.call("files.read_text_file", {"path": str(root / "a.txt")})
            assert read.text == "alpha"
            listing = await host.call("files.list_directory", {"path": str(root)})
            assert "a.txt" in listing.text
            outside = await host.call("files.read_text_file", {"path": "/etc/passwd"})
            assert outside.is_error and "outside allowed directories" in outside.text.lower()
            missing = await host.call("files.read_text_file", {})
            assert missing.error_kind == "invalid_args" and "'path' is a required property" in missing.text


async def test_plan_passes_a_read_result_as_text_to_the_filesystem_server(tmp_path: Path) -> None:
    """``${read}`` (a structured ``{content}`` result) where write_file/edit_file want a string: its text."""
    from tools.executor import Executor
    from tools.plan import load_plan

    root = tmp_path / "allowed"
    root.mkdir()
    (root / "src.txt").write_text("alpha\nbeta\n")
    (root / "target.txt").write_text("head\nPLACEHOLDER\n")
    spec = {"command": "node", "args": [npm_server("server-filesystem"), str(root)]}
    plan = load_plan(
        [
            {"id": "read", "tool": "files.read_text_file", "args": {"path": str(root / "src.txt")}},
            {
                "id": "whole",
                "tool": "files.write_file",
                "args": {"path": str(root / "whole.txt"), "content": "${read}"},
            },
            {
                "id": "field",
                "tool": "files.write_file",
                "args": {"path": str(root / "field.txt"), "content": "${read.content}"},
            },
            {
                "id": "edit",
                "tool": "files.edit_file",
                "args": {"path": str(root / "target.txt"), "edits": [{"oldText": "PLACEHOLDER", "newText": "${read}"}]},
            },
        ]
    )
    with anyio.fail_after(60):
        async with host_with(files=spec) as host:

            async def call(tool: str, args: dict[str, Any], *, timeout: float | None, progress: Any) -> Any:
                return await host.call(tool, args, timeout=timeout, progress=progress)

            run = await Executor(call, describe=host.resolve, default_timeout_s=20).run(plan)
    assert run.ok, {k: r.result.text for k, r in run.steps.items() if r.result and r.result.is_error}
    assert isinstance(run.steps["read"].result.value(), dict)  # structured: {"content": ...}
    assert (root / "whole.txt").read_text() == "alpha\nbeta\n"
    assert (root / "field.txt").read_text() == "alpha\nbeta\n"
    assert (root / "target.txt").read_text() == "head\nalpha\nbeta\n\n"


async def test_git_and_time_servers(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    servers = {
        "git": {"command": str(BIN / "mcp-server-git"), "args": ["--repository", str(repo)]},
        "clock": {"command": str(BIN / "mcp-server-time"), "args": ["--local-timezone", "UTC"]},
    }
    with anyio.fail_after(60):
        async with host_with(**servers) as host:
            status = await host.call("git.git_status", {"repo_path": str(repo)})
            assert not status.is_error and "README.md" in status.text
            log = await host.call("git.git_log", {"repo_path": str(repo), "max_count": 5})
            assert "first commit" in log.text
            now = await host.call("clock.get_current_time", {"timezone": "Asia/Tokyo"})
            assert not now.is_error and now.value()["timezone"] == "Asia/Tokyo"
            bad = await host.call("clock.get_current_time", {"timezone": "Not/AZone"})
            assert bad.is_error


def test_plan_run_over_reference_servers(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    root = tmp_path / "files"
    root.mkdir()
    plan = {
        "servers": {
            "git": {"command": str(BIN / "mcp-server-git"), "args": ["--repository", str(repo)]},
            "clock": {"command": str(BIN / "mcp-server-time")},
            "files": {"command": "node", "args": [npm_server("server-filesystem"), str(root)]},
            "everything": everything(),
        },
        "timeout_s": 20,
        "steps": [
            {"id": "now", "tool": "clock.get_current_time", "args": {"timezone": "Europe/Paris"}},
            {"id": "log", "tool": "git.git_log", "args": {"repo_path": str(repo), "max_count": 1}},
            {
                "id": "save",
                "tool": "files.write_file",
                "args": {"path": str(root / "report.txt"), "content": "at ${now.datetime}: ${log}"},
            },
            {
                "id": "check",
                "tool": "files.read_text_file",
                "args": {"path": str(root / "report.txt")},
                "deps": ["save"],
            },
            {"id": "sum", "tool": "everything.get-sum", "args": {"a": 1, "b": 2}},
            {"id": "broken", "tool": "everything.no-such-tool", "args": {}},
            {"id": "skipped", "tool": "everything.echo", "args": {"message": "${broken}"}},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    proc = subprocess.run(
        [str(BIN / "aios"), "plan", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIOS_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 1, proc.stderr  # a step failed on purpose
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    results = out["results"]
    assert set(results) == {s["id"] for s in plan["steps"]}
    assert "first commit" in results["check"]["text"] and "Europe/Paris" not in results["check"]["text"]
    assert results["sum"]["is_error"] is False
    assert results["broken"]["is_error"] and "has no tool 'no-such-tool'" in results["broken"]["text"]
    assert results["skipped"]["is_error"] and "skipped: step 'broken' failed" in results["skipped"]["text"]
    # The critical path is the slowest chain of dependent steps: which one depends on timings (a server slow to
    # start under load can make a lone step the longest), so check its shape, not its members.
    path_ids = out["metrics"]["critical_path"]
    assert path_ids and set(path_ids) <= set(results) and out["metrics"]["steps"] == 7
    assert path_ids in (["now", "save", "check"], ["log", "save", "check"]) or len(path_ids) == 1
