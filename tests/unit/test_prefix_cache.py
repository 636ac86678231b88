"""The prefix cache: a context whose owner is gone keeps its KV in its slot for the next request that starts
the same way, and is the first to go when a live context needs the slot."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from pathlib import Path

import anyio
import pytest
from _engine_kit import collect, engine_for

from kernel.backends.base import GenerationStats, SamplingParams
from kernel.backends.fake import FakeBackend
from kernel.engine import Engine

pytestmark = pytest.mark.anyio
P = SamplingParams(max_tokens=64, temperature=0.0)
SYSTEM = " ".join(f"rule{i}" for i in range(60))


def chat(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


async def released(engine: Engine, key: Hashable) -> None:
    engine.release(key)
    await engine.run_in_engine(lambda: None)


async def test_same_prompt_after_the_owner_left_computes_only_the_last_token(tmp_path: Path) -> None:
    fake = FakeBackend()
    async with engine_for(fake, tmp_path) as engine:
        text1, first = await collect(engine.submit(1, P, messages=chat("question one")))  # type: ignore[arg-type]
        await released(engine, 1)
        assert 1 not in engine.context_info and len(engine._cached) == 1
        text2, second = await collect(engine.submit(2, P, messages=chat("question one")))  # type: ignore[arg-type]
    assert text1 == text2 == "echo: question one"
    assert first.prefill_computed == first.prompt_tokens
    # Everything but the last prompt token (decoded again for its logits) came from the cached slot.
    assert second.prefill_computed == 1
    assert second.extra["prefix_reused"] == second.prompt_tokens - 1
    assert engine.cache_hits == 1 and not engine._cached  # the slot was taken over, not copied


async def test_a_longer_prompt_computes_only_the_new_tokens(tmp_path: Path) -> None:
    async with engine_for(FakeBackend(), tmp_path) as engine:
        _, first = await collect(engine.submit(1, P, messages=chat("what is up")))  # type: ignore[arg-type]
        await released(engine, 1)
        follow = [*chat("what is up"), {"role": "assistant", "content": "echo: what is up"}]
        follow.append({"role": "user", "content": "and then"})
        text, second = await collect(engine.submit(2, P, messages=follow))  # type: ignore[arg-type]
    assert text == "echo: and then"
    assert second.extra["prefix_reused"] >= first.prompt_tokens - 1  # up to the turn boundary
    assert second.prefill_computed == second.prompt_tokens - second.extra["prefix_reused"]


async def test_without_prefix_sharing_a_released_context_is_dropped(tmp_path: Path) -> None:
    async with engine_for(FakeBackend(), tmp_path, share_prefixes=False) as engine:
        await collect(engine.submit(1, P, messages=chat("q")))  # type: ignore[arg-type]
        await released(engine, 1)
        _, second = await collect(engine.submit(2, P, messages=chat("q")))  # type: ignore[arg-type]
    assert not engine._cached and second.prefill_computed == second.prompt_tokens


async def test_a_cached_prefix_is_evicted_before_any_live_context(tmp_path: Path) -> None:
    fake = FakeBackend(n_seq_max=2)
    async with engine_for(fake, tmp_path) as engine:
        await collect(engine.submit("gone", P, messages=[{"role": "user", "content": "unrelated words here"}]))
        await released(engine, "gone")
        # An idle live context holds the other slot (its agent is between requests).
        await collect(engine.submit("idle", P, messages=[{"role": "user", "content": "idle agent"}]))
        assert len(engine._cached) == 1 and engine._free_slots == []
        # A newcomer with nothing in common needs a slot: the cached prefix goes, the idle context stays.
        text, stats = await collect(engine.submit("new", P, messages=[{"role": "user", "content": "fresh start"}]))
        assert text == "echo: fresh start"
        assert not engine._cached
        assert engine.context_info["idle"]["residency"] == "resident"
        assert engine.context_info["idle"]["swaps"] == 0 and stats.swaps == 0


async def test_least_recently_cached_goes_first_and_the_rest_still_serve(tmp_path: Path) -> None:
    fake = FakeBackend(n_seq_max=2)
    async with engine_for(fake, tmp_path) as engine:
        old = [{"role": "user", "content": " ".join(f"old{i}" for i in range(40))}]
        recent = [{"role": "user", "content": " ".join(f"recent{i}" for i in range(40))}]
        await collect(engine.submit("a", P, messages=old))  # type: ignore[arg-type]
        await released(engine, "a")
        await collect(engine.submit("b", P, messages=recent))  # type: ignore[arg-type]
        await released(engine, "b")
        assert len(engine._cached) == 2
        await collect(engine.submit("c", P, messages=[{"role": "user", "content": "something else"}]))
        # "c" stays resident (idle) in the least recently cached slot; "recent" is still cached and serves.
        _, stats = await collect(engine.submit("d", P, messages=recent))  # type: ignore[arg-type]
    assert stats.prefill_computed == 1


async def test_concurrent_newcomers_with_a_cached_system_prompt_do_not_wait(tmp_path: Path) -> None:
    gate = threading.Event()
    gate.set()
    fake = FakeBackend(gate=gate)
    async with engine_for(fake, tmp_path) as engine:
        _, first = await collect(engine.submit(0, P, messages=chat("zero")))  # type: ignore[arg-type]
        await released(engine, 0)
        results: dict[int, GenerationStats] = {}

        async def one(i: int) -> None:
            results[i] = (await collect(engine.submit(i, P, messages=chat(f"number {i}"))))[1]  # type: ignore[arg-type]

        async with anyio.create_task_group() as tg:
            for i in range(1, 4):
                tg.start_soon(one, i)
    system_tokens = first.prompt_tokens - 3
    for stats in results.values():
        assert stats.extra["prefix_reused"] >= system_tokens  # the system prompt came from the cache


async def test_a_slot_taken_over_keeps_only_the_start_it_shares(tmp_path: Path) -> None:
    """No free slot: the newcomer takes over the cached prefix it shares most with (the system prompt), keeps
    that start in place, and the gone agent's tail is cut, not kept as the newcomer's branch snapshot."""
    fake = FakeBackend(n_seq_max=1)
    tail = " ".join(f"word{i}" for i in range(40))  # the gone agent's long tail
    async with engine_for(fake, tmp_path) as engine:
        await collect(engine.submit(1, P, messages=chat(tail)))  # type: ignore[arg-type]
        await released(engine, 1)
        text, second = await collect(engine.submit(2, P, messages=chat("other words")))  # type: ignore[arg-type]
        render = engine.template.render
        one = fake.tokenize(render(chat(tail)))  # type: ignore[arg-type]
        two = fake.tokenize(render(chat("other words")))  # type: ignore[arg-type]
    shared = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
    assert text == "echo: other words"
    assert engine.cache_hits == 1 and engine.cache_reused_tokens == shared
    assert second.extra["prefix_reused"] == shared and second.prefill_computed == second.prompt_tokens - shared
    assert engine.snapshot_saves == 0
