"""bench/agentic's reduced runs keep the rows they skip, each with the time and settings it was measured at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import agentic


def _write(tmp_path: Path, result: dict[str, object]) -> None:
    (tmp_path / "agentic.json").write_text(json.dumps(result))


def test_a_row_the_committed_file_had_kept_keeps_its_own_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentic, "RESULTS_DIR", tmp_path)
    _write(
        tmp_path,
        {
            "when": "T2",
            "machine": {"cores": 2},
            "params": {
                "rows": ["oneshot", "agentic", "m32oneshot"],
                "threads": 1,
                "kept_rows": {"rows": ["agentic"], "when": "T1", "machine": {"cores": 2}, "params": {"turns": [1, 1]}},
            },
            "metrics": {"aios_tok_s_m8": 18.0, "kernel_oneshot_tok_s_n1": 57.0, "kernel_oneshot_slots8_tok_s_n8": 66.0},
            "baseline": {"llama_server_tok_s_m8": 7.0, "llama_server_oneshot_tok_s_n1": 81.0},
        },
    )
    figures, about = agentic._kept(["oneshot"])
    assert figures == {"aios_tok_s_m8": 18.0, "kernel_oneshot_slots8_tok_s_n8": 66.0, "llama_server_tok_s_m8": 7.0}
    assert about["rows"] == ["agentic", "m32oneshot"]
    by_row = {row: run for run in about["runs"] for row in run["rows"]}
    assert by_row["agentic"]["when"] == "T1" and by_row["agentic"]["params"] == {"turns": [1, 1]}
    assert by_row["m32oneshot"]["when"] == "T2" and by_row["m32oneshot"]["params"]["threads"] == 1


def test_rows_kept_twice_stay_with_their_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentic, "RESULTS_DIR", tmp_path)
    runs = [{"rows": ["agentic"], "when": "T1", "machine": {}, "params": {}}]
    _write(
        tmp_path,
        {
            "when": "T3",
            "params": {"rows": ["oneshot", "agentic"], "kept_rows": {"rows": ["agentic"], "runs": runs}},
            "metrics": {"aios_tok_s_m8": 18.0},
        },
    )
    _, about = agentic._kept(["oneshot"])
    assert [(run["rows"], run["when"]) for run in about["runs"]] == [(["agentic"], "T1")]


def test_nothing_kept_without_a_committed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agentic, "RESULTS_DIR", tmp_path)
    assert agentic._kept(["oneshot"]) == ({}, {})
