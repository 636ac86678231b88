"""The example plugin on the deterministic fake backend: a real kernel and real access control."""

from __future__ import annotations

from pathlib import Path

import aios_example
import anyio
import pytest
from aios_example import WordCountAgent, count_words


def test_the_tool_is_a_plain_function() -> None:
    assert count_words("a b A") == 3
    assert count_words("a b A", unique=True) == 2


def test_the_agent_counts_with_its_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.testing import run_agent

    monkeypatch.setenv("AIOS_HOME", str(tmp_path))
    run = anyio.run(
        lambda: run_agent(WordCountAgent, "one two three", reply=lambda m: "Short.", plugins={"example": aios_example})
    )
    assert run.state == "exited", run.error
    assert run.result == "3"
    assert run.output == "3 words. Short.\n"
