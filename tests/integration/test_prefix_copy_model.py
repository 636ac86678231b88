"""A short shared prefix copied from another context gives the same greedy text as computing it (marker:
model)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.api import ChatMessage
from aios.models import bundled_model_path
from kernel.backends.base import GenerationStats, SamplingParams
from kernel.backends.llama_runtime import LlamaRuntime
from kernel.engine import MIN_COPY_TOKENS, MIN_SHARED_PREFIX, Engine
from tests.unit._engine_kit import collect

pytestmark = [pytest.mark.model, pytest.mark.anyio]

GREEDY = SamplingParams(max_tokens=48, temperature=0.0, repeat_penalty=1.0)
SYSTEM = "You are a helpful assistant."
QUESTIONS = ["Write about rivers.", "Write about mountains.", "Write about the sea."]


def chat(question: str) -> list[ChatMessage]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


async def answers(tmp_path: Path, *, warm: bool) -> list[tuple[str, GenerationStats]]:
    """Each question on a fresh engine; with ``warm``, another agent's answer to the first question is
    resident first, so each prompt's chat template and system prompt can be copied from it."""
    model = bundled_model_path()
    assert model is not None
    out = []
    for i, question in enumerate(QUESTIONS[1:]):
        runtime = LlamaRuntime(model, n_seq_max=2, n_ctx_seq=512, n_threads=2)
        engine = Engine(runtime, swap_dir=tmp_path / f"swap{int(warm)}{i}")
        engine.start()
        try:
            with anyio.fail_after(120):
                if warm:
                    await collect(engine.submit("first", GREEDY, messages=chat(QUESTIONS[0])))
                out.append(await collect(engine.submit("second", GREEDY, messages=chat(question))))
        finally:
            await engine.aclose()
    return out


async def test_copied_short_prefix_gives_the_same_greedy_text(tmp_path: Path) -> None:
    copied = await answers(tmp_path, warm=True)
    computed = await answers(tmp_path, warm=False)
    for (text, stats), (expected, alone) in zip(copied, computed, strict=True):
        assert MIN_COPY_TOKENS <= stats.extra["prefix_copied"] < MIN_SHARED_PREFIX
        assert stats.prefill_computed == stats.prompt_tokens - stats.extra["prefix_copied"]
        assert alone.extra["prefix_copied"] == 0 and alone.prefill_computed == alone.prompt_tokens
        assert text == expected and text


async def test_a_prompt_started_from_an_evicted_contexts_leftover_gives_the_same_greedy_text(tmp_path: Path) -> None:
    """One slot: a realtime agent preempts a running one; the newcomer keeps the chat template and system
    prompt the evicted context left in the slot (``Engine._admit``), and both texts match computing alone."""
    model = bundled_model_path()
    assert model is not None

    async def run(preempt: bool) -> dict[str, tuple[str, GenerationStats]]:
        runtime = LlamaRuntime(model, n_seq_max=1, n_ctx_seq=512, n_threads=2)
        engine = Engine(runtime, swap_dir=tmp_path / f"swap-{preempt}")
        engine.start()
        out: dict[str, tuple[str, GenerationStats]] = {}

        async def one(key: str, question: str, priority: str) -> None:
            out[key] = await collect(engine.submit(key, GREEDY, messages=chat(question), priority=priority))

        try:
            with anyio.fail_after(120):
                if preempt:
                    async with anyio.create_task_group() as tg:
                        first = engine.submit("first", GREEDY, messages=chat(QUESTIONS[0]))
                        pieces = []
                        async for piece in first:
                            pieces.append(piece)
                            if len(pieces) == 3:  # a few tokens into its answer
                                tg.start_soon(one, "urgent", QUESTIONS[1], "realtime")
                        assert first.stats is not None
                        out["first"] = ("".join(pieces), first.stats)
                else:
                    await one("first", QUESTIONS[0], "normal")
                    await one("urgent", QUESTIONS[1], "normal")
        finally:
            await engine.aclose()
        return out

    preempted, alone = await run(True), await run(False)
    assert preempted["first"][1].swaps == 1
    assert preempted["urgent"][1].extra["prefix_reused"] > 0
    assert preempted["urgent"][1].extra["prefix_copied"] == 0
    assert preempted["urgent"][0] == alone["urgent"][0] and preempted["first"][0] == alone["first"][0]
