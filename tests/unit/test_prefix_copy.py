"""Copying a short shared prefix (below the length worth waiting for) from a context that already holds it,
when the copy costs less than computing it (``Engine._copy_pays``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _engine_kit import collect, engine_for

from kernel.backends.base import GenerationStats, SamplingParams
from kernel.backends.fake import FakeBackend
from kernel.engine import MIN_COPY_TOKENS, MIN_SHARED_PREFIX

pytestmark = pytest.mark.anyio
P = SamplingParams(max_tokens=64, temperature=0.0)


def chat(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


async def two_agents(runtime: FakeBackend, tmp_path: Path, system: str) -> tuple[str, GenerationStats, int]:
    """Agent 1 answers and stays resident; agent 2 then asks with the same system prompt. Returns agent 2's
    text and stats, and how many prompt tokens the two prompts share."""
    async with engine_for(runtime, tmp_path) as engine:
        await collect(engine.submit(1, P, messages=chat(system, "question one")))  # type: ignore[arg-type]
        text, stats = await collect(engine.submit(2, P, messages=chat(system, "question two")))  # type: ignore[arg-type]
        render = engine.template.render
        one = runtime.tokenize(render(chat(system, "question one")))  # type: ignore[arg-type]
        two = runtime.tokenize(render(chat(system, "question two")))  # type: ignore[arg-type]
    shared = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
    return text, stats, shared


async def test_a_short_shared_prefix_is_copied_from_a_resident_context(tmp_path: Path) -> None:
    system = " ".join(f"rule{i}" for i in range(12))
    text, stats, shared = await two_agents(FakeBackend(n_ctx_seq=512), tmp_path, system)
    assert MIN_COPY_TOKENS <= shared < MIN_SHARED_PREFIX
    assert text == "echo: question two"
    assert stats.extra["prefix_copied"] == shared
    assert stats.prefill_computed == stats.prompt_tokens - shared


async def test_fewer_shared_tokens_than_min_copy_tokens_are_computed(tmp_path: Path) -> None:
    text, stats, shared = await two_agents(FakeBackend(n_ctx_seq=512), tmp_path, "rule0 rule1")
    assert 0 < shared < MIN_COPY_TOKENS
    assert text == "echo: question two"
    assert stats.extra["prefix_copied"] == 0
    assert stats.prefill_computed == stats.prompt_tokens


async def test_no_copy_where_the_whole_stream_costs_more_than_the_tokens(tmp_path: Path) -> None:
    # llama.cpp copies a slot's whole stream: at 65536 cells that is ~1.5 GB at the default byte estimate,
    # far more than computing a dozen tokens.
    system = " ".join(f"rule{i}" for i in range(12))
    text, stats, shared = await two_agents(FakeBackend(n_ctx_seq=65536), tmp_path, system)
    assert MIN_COPY_TOKENS <= shared < MIN_SHARED_PREFIX
    assert text == "echo: question two"
    assert stats.extra["prefix_copied"] == 0
    assert stats.prefill_computed == stats.prompt_tokens
