from __future__ import annotations

import json
from pathlib import Path

import pytest
from _gguf_kit import write_tiny_gguf
from click.testing import CliRunner

from aios.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fake_backend(aios_home: Path) -> None:
    aios_home.mkdir(exist_ok=True)
    (aios_home / "config.toml").write_text('[llm]\nbackend = "fake"\n')


def test_run_streams_to_stdout_and_ps_sees_it(runner: CliRunner, fake_backend: None) -> None:
    result = runner.invoke(cli, ["run", "chat", "hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "echo: hello world\n"
    ps = runner.invoke(cli, ["ps", "--all", "--json"])
    rows = json.loads(ps.stdout)["processes"]
    assert [(r["agent"], r["state"], r["result"]) for r in rows] == [("chat", "exited", "echo: hello world")]
    assert runner.invoke(cli, ["ps", "--json"]).stdout.count('"pid"') == 0  # exited ones hidden by default


def test_run_json(runner: CliRunner, fake_backend: None) -> None:
    result = runner.invoke(cli, ["run", "chat", "hi", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["result"] == "echo: hi"


def test_unknown_agent_is_exit_2_with_one_line(runner: CliRunner, fake_backend: None) -> None:
    result = runner.invoke(cli, ["run", "nope", "hi"])
    assert result.exit_code == 2
    agents = "chat, files, plan, planner, summarizer, supervisor, worker"
    expected = f"Error: unknown agent 'nope' (available: {agents}) (see `aios agents`)"
    assert result.stderr.strip().splitlines() == [expected]


def test_bad_config_is_exit_2_and_nothing_runs(runner: CliRunner, aios_home: Path) -> None:
    aios_home.mkdir()
    (aios_home / "config.toml").write_text("[llm]\nn_threads = -1\n")
    result = runner.invoke(cli, ["run", "chat", "hi"])
    assert result.exit_code == 2
    assert "'llm.n_threads'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (aios_home / "aios.db").exists()


def test_unwritable_data_dir_is_exit_1(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("AIOS_HOME", str(blocker / "home"))
    result = runner.invoke(cli, ["run", "chat", "hi"])
    assert result.exit_code in (1, 2)
    assert "not writable" in result.stderr or "cannot be read" in result.stderr


def test_corrupt_model_is_one_line_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    bad = write_tiny_gguf(tmp_path / "bad.gguf")  # a complete file llama.cpp cannot load (no weights)
    assert runner.invoke(cli, ["models", "add", str(bad), "--name", "bad", "--default"]).exit_code == 0
    result = runner.invoke(cli, ["run", "chat", "hi"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot load model")
    assert len(result.stderr.strip().splitlines()) == 1
    doctor = runner.invoke(cli, ["doctor"])
    assert doctor.exit_code == 1
    assert "FAIL model: cannot load model" in doctor.stdout


def test_models_commands(runner: CliRunner, tmp_path: Path) -> None:
    listing = json.loads(runner.invoke(cli, ["models", "list", "--json"]).stdout)
    assert listing["default"] == "smollm2-135m"
    model = write_tiny_gguf(tmp_path / "Other.gguf")
    assert runner.invoke(cli, ["models", "add", str(model)]).exit_code == 0
    assert runner.invoke(cli, ["models", "default", "other"]).exit_code == 0
    assert runner.invoke(cli, ["models", "default"]).stdout.strip() == "other"
    missing = runner.invoke(cli, ["models", "add", str(tmp_path / "missing.gguf")])
    assert missing.exit_code == 1
    assert "model file not found" in missing.stderr
    unknown = runner.invoke(cli, ["models", "default", "ghost"])
    assert unknown.exit_code == 2


def test_config_show_and_path(runner: CliRunner, aios_home: Path) -> None:
    shown = runner.invoke(cli, ["config", "show"])
    assert shown.exit_code == 0
    assert "[llm]" in shown.stdout and "n_ctx = 2048" in shown.stdout
    assert runner.invoke(cli, ["config", "path"]).stdout.strip() == str(aios_home / "config.toml")
    assert json.loads(runner.invoke(cli, ["config", "show", "--json"]).stdout)["llm"]["backend"] == "llama"


def test_doctor_passes_on_a_good_install(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["doctor", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    names = {c["name"] for c in report["checks"]}
    assert {"config", "store", "model", "embedding model.onnx", "embedding tokenizer.json", "plugins"} <= names


def test_help_everywhere(runner: CliRunner) -> None:
    for args in (["-h"], ["run", "-h"], ["ps", "-h"], ["models", "add", "-h"], ["config", "show", "-h"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0
        assert "Usage:" in result.stdout


def test_top_json_shows_live_processes_with_rates(runner: CliRunner) -> None:
    from memory.store import Store

    store = Store.open()
    store.save_process(
        {
            "pid": 7,
            "agent": "chat",
            "state": "running",
            "priority": "high",
            "tbt_s": 0.01,
            "residency": "swapped_ram",
            "boot_id": "b",
        }
    )
    store.close()
    rows = json.loads(runner.invoke(cli, ["top", "--json"]).stdout)["processes"]
    assert [(r["pid"], r["residency"], round(r["tok_s"])) for r in rows] == [(7, "swapped_ram", 100)]
    live = runner.invoke(cli, ["top", "-n", "1", "-d", "0.1"])
    assert live.exit_code == 0 and "swapp" in live.stdout and " 7 " in live.stdout
