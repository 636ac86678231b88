"""`aios plan run` and `aios mcp test/tools/call` end to end over the repo's own stdio server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aios.cli import cli
from tests.mcp_servers import slow_server_spec


def _config(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"mcpServers": {"slow": slow_server_spec(**extra)}}))
    return path


def test_plan_run_json_reports_every_step(tmp_path: Path) -> None:
    plan = {
        "timeout_s": 5,
        "steps": [
            {"id": "a", "tool": "slow.lookup", "args": {"city": "Tokyo"}},
            {"id": "b", "tool": "slow.echo", "args": {"text": "${a.country}"}},
            {"id": "hang", "tool": "slow.hang", "timeout_s": 0.3},
            {"id": "loop1", "tool": "slow.echo", "args": {"text": "${loop2}"}},
            {"id": "loop2", "tool": "slow.echo", "args": {"text": "${loop1}"}},
            {"id": "t", "tool": "time.now", "args": {"timezone": "UTC"}},
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    out = CliRunner().invoke(cli, ["plan", "run", str(path), "--mcp-config", str(_config(tmp_path)), "--json"])
    assert out.exit_code == 1, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    results = doc["results"]
    assert set(results) == {"a", "b", "hang", "loop1", "loop2", "t"}
    assert results["b"] == {**results["b"], "text": "Japan", "is_error": False}
    assert results["hang"]["is_error"] and "timed out" in results["hang"]["text"]
    assert "dependency cycle" in results["loop1"]["text"]
    assert all({"text", "is_error", "elapsed_s"} <= set(r) for r in results.values())
    assert doc["metrics"]["critical_path"] and doc["metrics"]["steps"] == 6


def test_plan_run_human_output_and_success(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps(
            {
                "steps": [{"id": "e", "tool": "slow.echo", "args": {"text": "hi"}}],
                "servers": {"slow": slow_server_spec()},
            }
        )
    )
    out = CliRunner().invoke(cli, ["plan", "run", str(path)])
    assert out.exit_code == 0, out.output
    assert "e            ok" in out.stdout and "makespan" in out.stdout


def test_plan_run_bad_files_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    out = runner.invoke(cli, ["plan", "run", str(broken)])
    assert out.exit_code == 2 and "not valid JSON" in out.stderr
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"steps": []}))
    out = runner.invoke(cli, ["plan", "run", str(empty)])
    assert out.exit_code == 2 and "steps: List should have at least 1 item" in out.stderr


def test_mcp_test_tools_and_call(tmp_path: Path) -> None:
    runner = CliRunner()
    config = _config(tmp_path, env={"SECRET_X": "s3cr3t-value"})
    tested = runner.invoke(cli, ["mcp", "test", "slow", "--mcp-config", str(config), "--json"])
    assert tested.exit_code == 0, tested.output
    info = json.loads(tested.stdout)
    assert info["state"] == "ready" and info["env"] == {"SECRET_X": "***"} and "s3cr3t-value" not in tested.stdout
    assert {"slow.sleep", "slow.hang"} <= {t["name"] for t in info["tool_list"]}
    found = runner.invoke(cli, ["mcp", "tools", "--mcp-config", str(config), "--search", "city facts", "--json"])
    assert json.loads(found.stdout)["tools"][0]["name"] == "slow.lookup"
    called = runner.invoke(cli, ["mcp", "call", "slow.add", '{"a": 1, "b": 2}', "--mcp-config", str(config)])
    assert called.exit_code == 0 and called.stdout.strip() == "3.0"
    failed = runner.invoke(cli, ["mcp", "call", "slow.fail", "{}", "--mcp-config", str(config)])
    assert failed.exit_code == 1
    bad = runner.invoke(cli, ["mcp", "call", "slow.add", "not json", "--mcp-config", str(config)])
    assert bad.exit_code == 2 and "ARGUMENTS must be a JSON object" in bad.stderr


def test_plan_run_without_its_own_servers_is_a_kernel_process(tmp_path: Path, aios_home: Path) -> None:
    """No --mcp-config and no servers in the file: the built-in `plan` agent runs it in a kernel, so the run is a
    process (in `aios ps --all`) and each tool call is checked and audited under it."""
    aios_home.mkdir(parents=True, exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"steps": [{"id": "t", "tool": "time.now", "args": {"timezone": "UTC"}}]}))
    runner = CliRunner()
    out = runner.invoke(cli, ["plan", "run", str(path), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert not doc["results"]["t"]["is_error"] and "UTC" in doc["results"]["t"]["text"]
    ps = json.loads(runner.invoke(cli, ["ps", "--all", "--json"]).stdout)
    assert any(p["agent"] == "plan" and p["state"] == "exited" for p in ps["processes"])
    audit = json.loads(runner.invoke(cli, ["audit", "--agent", "plan", "--json"]).stdout)
    assert any(r["syscall"] == "tool.call" and r["decision"] == "allow" for r in audit["rows"])
