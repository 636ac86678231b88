"""How the engine lays agents over llama.cpp's sequence slots: every batch in slot order (llama.cpp runs one
graph per stretch of ascending, consecutive sequence ids when each sequence has its own KV stream), and a
new prompt keeps the start it shares with what an evicted context left in the slot it gets."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _engine_kit import collect, engine_for

from aios.api import ChatMessage
from kernel.backends.base import GenerationStats, SamplingParams
from kernel.backends.fake import FakeBackend

pytestmark = pytest.mark.anyio
P = SamplingParams(max_tokens=64, temperature=0.0)
SYSTEM = " ".join(f"rule{i}" for i in range(40))


def chat(user: str) -> list[ChatMessage]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def ascending(batch: list[tuple[int, int, int, bool]]) -> bool:
    seqs = [seq for _, _, seq, _ in batch]
    return seqs == sorted(seqs)


async def test_a_batch_runs_in_slot_order_whatever_the_scheduling_order(tmp_path: Path) -> None:
    """A realtime request comes first in the plan though its context sits in the higher slot."""
    fake = FakeBackend(script=lambda m: " ".join(["t"] * 40), token_delay=0.002, n_seq_max=2)
    out: dict[str, str] = {}
    async with engine_for(fake, tmp_path) as engine:

        async def one(key: str, priority: str, delay: float) -> None:
            await anyio.sleep(delay)
            out[key], _ = await collect(engine.submit(key, P, messages=chat(key), priority=priority))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "normal", "normal", 0.0)
            tg.start_soon(one, "rt", "realtime", 0.03)
    both = [b for b in fake.batches if len({seq for _, _, seq, _ in b}) == 2]
    assert both, "the two requests never shared a step"
    assert all(ascending(b) for b in both), [[seq for _, _, seq, _ in b] for b in both if not ascending(b)][:3]
    assert out == {"normal": " ".join(["t"] * 40), "rt": " ".join(["t"] * 40)}


async def test_a_new_prompt_keeps_the_start_an_evicted_context_left_in_its_slot(tmp_path: Path) -> None:
    """One slot: a realtime agent preempts a running one with the same system prompt. The evicted context's
    KV is saved and the slot's shared start serves the newcomer in place (nothing else holds it to copy)."""
    fake = FakeBackend(token_delay=0.002, n_seq_max=1, n_ctx_seq=512)
    stats: dict[str, GenerationStats] = {}
    text: dict[str, str] = {}
    long_question = " ".join(f"word{i}" for i in range(40))
    async with engine_for(fake, tmp_path) as engine:

        async def one(key: str, user: str, priority: str, delay: float) -> None:
            await anyio.sleep(delay)
            text[key], stats[key] = await collect(engine.submit(key, P, messages=chat(user), priority=priority))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "first", long_question, "normal", 0.0)
            tg.start_soon(one, "urgent", "question two", "realtime", 0.03)
        render = engine.template.render
    one_tokens = fake.tokenize(render(chat(long_question)))
    two_tokens = fake.tokenize(render(chat("question two")))
    shared = next(i for i, (a, b) in enumerate(zip(one_tokens, two_tokens, strict=False)) if a != b)
    assert shared >= 40
    assert text == {"first": f"echo: {long_question}", "urgent": "echo: question two"}
    assert stats["first"].swaps == 1 and stats["first"].restores == 1  # it really was evicted, and came back
    assert stats["urgent"].extra["prefix_reused"] == shared
    assert stats["urgent"].extra["prefix_copied"] == 0
    assert stats["urgent"].prefill_computed == stats["urgent"].prompt_tokens - shared
