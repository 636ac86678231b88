"""mcp.json: the Claude Desktop / Cursor format as-is, ${env:...} expansion, clear errors, secrets redacted."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from aios import paths
from aios.cli import cli
from aios.errors import ConfigError
from tools.config import Redactor, expand_env, load_servers, parse_server, parse_servers, write_mcp_file

CLAUDE_DESKTOP = {
    "globalShortcut": "Ctrl+Space",
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
        },
        "github": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GH_TOKEN}"},
            "autoApprove": ["get_issue"],
        },
        "remote": {
            "url": "https://mcp.example.com/mcp?api_key=sk-live-123456",
            "headers": {"Authorization": "Bearer ${env:REMOTE_TOKEN:-tok-default-9}"},
        },
    },
}


def test_claude_desktop_config_parses_as_is() -> None:
    servers = parse_servers(CLAUDE_DESKTOP, environ={"GH_TOKEN": "ghp_secretvalue"})
    assert set(servers) == {"filesystem", "github", "remote"}
    gh = servers["github"]
    assert gh.transport == "stdio" and gh.env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secretvalue"}
    remote = servers["remote"]
    assert remote.transport == "http"
    assert remote.headers["Authorization"] == "Bearer tok-default-9"
    assert remote.timeout == 60.0 and remote.autostart is False


def test_env_expansion_forms_and_missing_variable() -> None:
    assert expand_env("a${env:X}b", "w", {"X": "1"}) == "a1b"
    assert expand_env("${env:MISSING:-fallback}", "w", {}) == "fallback"
    assert expand_env("${env:EMPTY:-x}", "w", {"EMPTY": ""}) == ""
    with pytest.raises(ConfigError, match=r"mcpServers.gh.env.TOKEN: environment variable GH_TOKEN is not set"):
        parse_server("gh", {"command": "x", "env": {"TOKEN": "${env:GH_TOKEN}"}}, environ={})


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("a.b", {"command": "x"}, "must be 1-64 letters"),
        ("s", {"command": "x", "url": "http://h"}, "exactly one of"),
        ("s", {}, "exactly one of"),
        ("s", {"url": "ftp://h"}, "http:// or https://"),
        ("s", {"command": "x", "args": "notalist"}, "args must be a list"),
        ("s", {"command": "x", "env": {"A": 1}}, "env must be an object of strings"),
        ("s", {"command": "x", "timeout": -1}, "positive number"),
        ("s", {"command": "x", "autostart": "yes"}, "autostart must be true or false"),
        ("s", "x", "must be an object"),
    ],
)
def test_bad_server_entries_are_specific_errors(name: str, spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_server(name, spec)


def test_redacted_listing_hides_every_secret() -> None:
    servers = parse_servers(CLAUDE_DESKTOP, environ={"GH_TOKEN": "ghp_secretvalue"})
    shown = json.dumps([s.redacted() for s in servers.values()])
    for secret in ("ghp_secretvalue", "tok-default-9", "sk-live-123456"):
        assert secret not in shown
    assert '"GITHUB_PERSONAL_ACCESS_TOKEN": "***"' in shown and "api_key=***" in shown


def test_redactor_scrubs_expanded_values_from_text() -> None:
    cfg = parse_server("s", {"command": "x", "env": {"K": "supersecret"}})
    assert Redactor(cfg.secrets()).scrub("failed: token supersecret rejected") == "failed: token *** rejected"


def test_tool_globs() -> None:
    cfg = parse_server("g", {"command": "x", "allowed_tools": ["git_*"], "denied_tools": ["git_reset"]})
    assert cfg.tool_allowed("git_log") and not cfg.tool_allowed("git_reset") and not cfg.tool_allowed("other")


def test_file_roundtrip_is_private(aios_home: Path) -> None:
    path = write_mcp_file({"mcpServers": {"t": {"command": "x", "env": {"A": "b"}}}})
    assert path == paths.mcp_config_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_servers()["t"].env == {"A": "b"}
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_servers()


def test_cli_add_list_remove_with_redaction(aios_home: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli,
        [
            "mcp",
            "add",
            "git",
            "--env",
            "TOKEN=abcd1234secret",
            "--timeout",
            "5",
            "--",
            "uvx",
            "mcp-server-git",
            "--repository",
            "/src",
        ],
    )
    assert out.exit_code == 0, out.output
    listing = runner.invoke(cli, ["mcp", "list", "--json"])
    assert listing.exit_code == 0
    assert "abcd1234secret" not in listing.output
    row = json.loads(listing.output)["servers"][0]
    assert row["args"] == ["mcp-server-git", "--repository", "/src"] and row["env"] == {"TOKEN": "***"}
    assert row["timeout"] == 5.0
    # Claude Desktop's own file, pasted.
    desktop = tmp_path / "claude_desktop_config.json"
    desktop.write_text(json.dumps(CLAUDE_DESKTOP))
    imported = runner.invoke(cli, ["mcp", "add", "--from", str(desktop)])
    assert imported.exit_code == 0, imported.output
    saved = json.loads(paths.mcp_config_path().read_text())["mcpServers"]
    assert saved["github"]["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GH_TOKEN}"}  # kept unexpanded
    table = runner.invoke(cli, ["mcp", "list"])
    assert "sk-live-123456" not in table.output and "remote" in table.output
    assert runner.invoke(cli, ["mcp", "remove", "git"]).exit_code == 0
    missing = runner.invoke(cli, ["mcp", "remove", "git"])
    assert missing.exit_code == 2 and "no MCP server 'git'" in missing.output


def test_cli_add_rejects_bad_input_and_changes_nothing(aios_home: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["mcp", "add", "x", "--url", "ftp://nope"])
    assert bad.exit_code == 2 and "http:// or https://" in bad.output
    both = runner.invoke(cli, ["mcp", "add", "x", "--url", "http://h", "--", "cmd"])
    assert both.exit_code == 2
    assert not paths.mcp_config_path().exists()


def test_one_bad_server_does_not_take_the_others_down(aios_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.config import load_servers_lenient

    monkeypatch.delenv("UNSET_TOKEN_X", raising=False)
    write_mcp_file(
        {
            "mcpServers": {
                "good": {"command": "x"},
                "bad": {"url": "https://h", "headers": {"A": "${env:UNSET_TOKEN_X}"}},
            }
        }
    )
    good, bad = load_servers_lenient()
    assert list(good) == ["good"] and "UNSET_TOKEN_X is not set" in bad["bad"]
    runner = CliRunner()
    out = runner.invoke(cli, ["mcp", "call", "time.now", '{"timezone": "UTC"}'])  # through a kernel, as the user
    assert out.exit_code == 0 and '"timezone": "UTC"' in out.stdout
    audit = json.loads(runner.invoke(cli, ["audit", "--agent", "user", "--json"]).stdout)
    assert any(r["syscall"] == "tool.call" and r["decision"] == "allow" for r in audit["rows"])
    test_bad = runner.invoke(cli, ["mcp", "test", "bad"])
    assert test_bad.exit_code == 2 and "UNSET_TOKEN_X is not set" in test_bad.stderr
