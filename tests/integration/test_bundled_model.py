"""The real engine on the real bundled SmolLM2 (marker: model)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from aios.config import Config, LLMConfig
from kernel import load_runtime, open_kernel
from kernel.events import OutputWritten, ProcessExited
from memory.store import Store

pytestmark = pytest.mark.model


@pytest.fixture
def runtime():  # type: ignore[no-untyped-def]
    return load_runtime(Config(llm=LLMConfig(n_ctx=2048)))


@pytest.mark.anyio
async def test_two_chat_agents_on_the_real_model_both_answer(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(tmp_path / "aios.db")
    streamed: dict[int, list[str]] = {}
    with anyio.fail_after(120):
        async with open_kernel(Config(llm=LLMConfig(temperature=0.0)), runtime=runtime, store=store) as kernel:
            events = kernel.subscribe()
            a = await kernel.spawn("chat", "What is the capital of France? Answer in one word.", interactive=False)
            b = await kernel.spawn("chat", "Name a primary colour.", interactive=False)
            assert {p["pid"] for p in kernel.ps()} == {a, b}
            exited = set()
            async for event in events:
                if isinstance(event, OutputWritten):
                    streamed.setdefault(event.pid, []).append(event.text)
                elif isinstance(event, ProcessExited):
                    exited.add(event.pid)
                    if exited == {a, b}:
                        break
            infos = [await kernel.wait(pid) for pid in (a, b)]
    for info in infos:
        assert info["state"] == "exited", info
        assert info["result"], info
        assert info["completion_tokens"] > 0
        assert len(streamed[info["pid"]]) > 1  # it arrived token by token, not in one piece
        assert "".join(streamed[info["pid"]]).strip() == info["result"]
    assert "paris" in infos[0]["result"].lower()
    store.close()


def test_cli_run_streams_an_answer_to_stdout(aios_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aios", "run", "chat", "Say hello."],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIOS_HOME": str(aios_home)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    ps = subprocess.run(
        [sys.executable, "-m", "aios", "ps", "--all", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AIOS_HOME": str(aios_home)},
    )
    assert '"state": "exited"' in ps.stdout
