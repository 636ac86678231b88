"""A config.toml that cannot be read (not UTF-8, a directory, no permission) stops every command with one line
naming the file and exit code 2, no traceback, nothing written; `aios doctor` reports it and checks the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from aios.cli import cli

AIOS = str(Path(sys.executable).parent / "aios")
GOOD = '[llm]\nbackend = "fake"\n'


def _not_utf8(path: Path) -> str:
    path.write_bytes(b'[llm]\nbackend = "fa\xffke"\n')  # 0xff never occurs in UTF-8
    return "not UTF-8 text (byte 0xff at offset 19)"


def _latin1(path: Path) -> str:
    path.write_bytes('[tui]\ntheme = "caf\u00e9"\n'.encode("latin-1"))  # what an old editor saves
    return "not UTF-8 text (byte 0xe9 at offset 18)"


def _directory(path: Path) -> str:
    path.mkdir()
    (path / "inside.toml").write_text(GOOD)
    return "is a directory, not a file"


def _unreadable(path: Path) -> str:
    if os.geteuid() == 0:
        pytest.skip("root reads a mode-000 file anyway")
    path.write_text(GOOD)
    path.chmod(0)
    return "cannot be read: Permission denied"


BROKEN: dict[str, Callable[[Path], str]] = {
    "not-utf8": _not_utf8,
    "latin1": _latin1,
    "directory": _directory,
    "unreadable": _unreadable,
}


@pytest.fixture(params=sorted(BROKEN))
def broken(request: pytest.FixtureRequest, aios_home: Path) -> tuple[Path, str]:
    aios_home.mkdir(mode=0o700)
    config = aios_home / "config.toml"
    return config, BROKEN[request.param](config)


def _listing(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in home.rglob("*")}


@pytest.mark.parametrize(
    "args",
    [["ps"], ["config", "show"], ["config", "show", "--json"], ["run", "chat", "hi"], ["models", "list"], []],
    ids=["ps", "config-show", "config-show-json", "run", "models-list", "tui"],
)
def test_every_command_stops_with_one_line_and_exit_2(broken: tuple[Path, str], args: list[str]) -> None:
    config, problem = broken
    before = _listing(config.parent)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"Error: {config}: {problem} ({_hint(result.stderr)})"]
    assert "Traceback" not in result.output and "UnicodeDecodeError" not in result.output
    assert _listing(config.parent) == before  # nothing written: no store, no lock, no token


def _hint(stderr: str) -> str:
    return stderr.strip().rsplit(" (", 1)[1].rstrip(")")


def test_the_real_process_prints_one_line_and_exits_2(aios_home: Path) -> None:
    aios_home.mkdir(mode=0o700)
    config = aios_home / "config.toml"
    problem = _not_utf8(config)
    for args in (["ps"], ["config", "show"], ["mcp", "serve"]):
        result = subprocess.run(
            [AIOS, *args], env={**os.environ, "AIOS_HOME": str(aios_home)}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: {config}: {problem}"), lines
        assert result.stdout == ""
    assert _listing(aios_home) == {"config.toml"}


def test_the_commands_that_help_fix_it_still_work(broken: tuple[Path, str]) -> None:
    config, _ = broken
    runner = CliRunner()
    assert runner.invoke(cli, ["config", "path"]).stdout.strip() == str(config)
    assert runner.invoke(cli, ["paths"]).exit_code == 0
    helped = runner.invoke(cli, ["ps", "--help"])
    assert helped.exit_code == 0 and "Usage:" in helped.stdout


def test_doctor_reports_fail_config_and_goes_on(broken: tuple[Path, str]) -> None:
    config, problem = broken
    runner = CliRunner()
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"FAIL config: {config}: {problem}")
    names = {line[5:].split(":", 1)[0] for line in lines}
    assert {"config", "data dir", "modes", "store", "engine", "model", "plugins"} <= names
    report = json.loads(runner.invoke(cli, ["doctor", "--json"]).stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert not report["ok"] and not checks["config"]["ok"]
    assert checks["model"]["ok"] and checks["store"]["ok"]  # the rest was checked, and is fine


def test_bad_toml_and_bad_values_are_still_one_line(aios_home: Path) -> None:
    aios_home.mkdir(mode=0o700)
    config = aios_home / "config.toml"
    runner = CliRunner()
    for text, expected in (("[llm\n", "not valid TOML"), ("[llm]\nn_ctx = 'big'\n", "'llm.n_ctx'")):
        config.write_text(text)
        result = runner.invoke(cli, ["ps"])
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
