"""Branch snapshots: a context whose next prompt branches away from its KV keeps the KV it leaves in RAM and
restores it when a later prompt of its own starts the same way (an agent switching between task branches, or
interleaving two kinds of call), instead of computing it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from _engine_kit import engine_for as engine_on

from kernel.backends.base import GenerationStats, SamplingParams
from kernel.backends.fake import FakeBackend, echo_script
from kernel.engine import Engine

pytestmark = pytest.mark.anyio
P = SamplingParams(max_tokens=16, temperature=0.0)
SYSTEM = " ".join(f"rule{i}" for i in range(20))
BRANCH_A = " ".join(f"alpha{i}" for i in range(50))
BRANCH_B = " ".join(f"beta{i}" for i in range(50))


def prompt(branch: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"{SYSTEM}\n{branch}"}, {"role": "user", "content": user}]


@asynccontextmanager
async def engine_for(tmp_path: Path, script: Any = echo_script, **kwargs: Any) -> AsyncIterator[Engine]:
    async with engine_on(FakeBackend(script), tmp_path, **kwargs) as engine:
        yield engine


async def ask(engine: Engine, key: Any, messages: list[dict[str, str]], *, echo: bool = True) -> GenerationStats:
    g = engine.submit(key, P, messages=messages)  # type: ignore[arg-type]
    text = "".join([piece async for piece in g])
    assert text == (f"echo: {messages[-1]['content']}" if echo else "")
    assert g.stats is not None
    return g.stats


async def test_switching_back_to_a_branch_restores_its_kv(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        first = await ask(engine, "agent", prompt(BRANCH_A, "one"))
        await ask(engine, "agent", prompt(BRANCH_B, "two"))
        back = await ask(engine, "agent", prompt(BRANCH_A, "three"))
    assert first.prefill_computed == first.prompt_tokens
    # Everything up to the user message came back from A's snapshot; only the new message was computed.
    assert back.extra["prefix_restored"] >= first.prompt_tokens - 3
    assert back.prefill_computed == back.prompt_tokens - back.extra["prefix_restored"]
    assert back.prefill_computed <= 4
    assert engine.snapshot_restores == 1


async def test_without_snapshots_the_branch_is_computed_again(tmp_path: Path) -> None:
    async with engine_for(tmp_path, branch_snapshots=0) as engine:
        await ask(engine, "agent", prompt(BRANCH_A, "one"))
        await ask(engine, "agent", prompt(BRANCH_B, "two"))
        back = await ask(engine, "agent", prompt(BRANCH_A, "three"))
    assert back.prefill_computed > 50
    assert engine.snapshot_saves == 0 and engine.snapshot_restores == 0


async def test_interleaved_kinds_of_call_each_reuse_their_own_prefix(tmp_path: Path) -> None:
    """A classify call and a reply call in turn (two different long system prompts): from the second round
    on, each recomputes only its new message, not its whole system prompt."""
    async with engine_for(tmp_path) as engine:
        rounds = []
        for i in range(3):
            classify = await ask(engine, "agent", prompt(BRANCH_A, f"classify message {i}"))
            reply = await ask(engine, "agent", prompt(BRANCH_B, f"reply message {i}"))
            rounds.append((classify.prefill_computed, reply.prefill_computed))
    assert rounds[0][0] > 50 and rounds[0][1] > 50
    for classify_computed, reply_computed in rounds[1:]:
        assert classify_computed <= 5 and reply_computed <= 5


async def test_a_snapshot_is_never_served_to_another_context(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        await ask(engine, "owner", prompt(BRANCH_A, "one"))
        await ask(engine, "owner", prompt(BRANCH_B, "two"))  # A now lives only in the owner's snapshot
        other = await ask(engine, "other", prompt(BRANCH_A, "one"))
    assert other.extra["prefix_restored"] == 0
    assert other.prefill_computed >= other.prompt_tokens - 25  # at most the shared system prompt was copied


async def test_snapshots_are_bounded_per_context_and_freed_with_it(tmp_path: Path) -> None:
    async with engine_for(tmp_path, branch_snapshots=2) as engine:
        for branch in ("a", "b", "c", "d"):
            words = " ".join(f"{branch}{i}" for i in range(50))
            await ask(engine, "agent", prompt(words, "go"))
        ctx = engine._contexts["agent"]
        assert len(ctx.snapshots) == 2  # the two most recent branches it left: b and c
        left = [b"".join(engine.runtime.piece(t) for t in s.tokens).decode() for s in ctx.snapshots]
        assert ["b0 b1" in text for text in left] == [True, False] and "c0 c1" in left[1]
        held = engine.snapshot_bytes
        assert held == sum(s.data.nbytes for s in ctx.snapshots) > 0
        # The oldest branch (a) is gone: going back to it computes it again.
        again = await ask(engine, "agent", prompt(" ".join(f"a{i}" for i in range(50)), "go"))
        assert again.extra["prefix_restored"] == 0 and again.prefill_computed > 50
        engine.release("agent")
        await engine.run_in_engine(lambda: None)
        assert engine.snapshot_bytes == 0


async def test_the_byte_cap_evicts_the_least_recently_used_snapshot(tmp_path: Path) -> None:
    async with engine_for(tmp_path) as engine:
        await ask(engine, "x", prompt(BRANCH_A, "one"))
        await ask(engine, "x", prompt(BRANCH_B, "two"))  # saves A
        size = engine.snapshot_bytes
        engine.snapshot_ram_bytes = size + size // 2  # room for about one more snapshot of that size
        await ask(engine, "y", prompt(BRANCH_B, "three"))
        await ask(engine, "y", prompt(BRANCH_A, "four"))  # saves y's B; x's older A must go
        assert engine.snapshot_bytes <= engine.snapshot_ram_bytes
        assert not engine._contexts["x"].snapshots and len(engine._contexts["y"].snapshots) == 1


def _longer(branch: str) -> list[dict[str, str]]:
    """The branch one exchange further (empty replies: the next prompt then starts with exactly the tokens the
    context holds; the fake's word tokens would split a reply differently once it is part of the prompt)."""
    return [*prompt(branch, "one"), {"role": "assistant", "content": ""}, {"role": "user", "content": "more"}]


async def test_a_restored_snapshot_is_taken_and_saved_again_longer(tmp_path: Path) -> None:
    async with engine_for(tmp_path, script=lambda m: "") as engine:
        await ask(engine, "agent", prompt(BRANCH_A, "one"), echo=False)
        await ask(engine, "agent", prompt(BRANCH_B, "two"), echo=False)  # saves A + "one"
        follow = await ask(engine, "agent", _longer(BRANCH_A), echo=False)  # takes it, saves B + "two"
        assert follow.extra["prefix_restored"] == follow.prompt_tokens - 2
        await ask(engine, "agent", prompt(BRANCH_B, "two"), echo=False)  # takes B's, saves the longer A
        snaps = engine._contexts["agent"].snapshots
        assert len(snaps) == 1 and len(snaps[0].tokens) == follow.prompt_tokens
        assert engine.snapshot_bytes == snaps[0].data.nbytes


async def test_a_longer_snapshot_of_the_same_branch_replaces_the_shorter(tmp_path: Path) -> None:
    """When restoring does not pay (a slow restore path), the branch is computed again; the longer snapshot
    saved when it is left again replaces the one it extends."""
    async with engine_for(tmp_path, script=lambda m: "") as engine:
        engine.cost.rates["ram"] = 1.0  # one byte a second: never worth restoring
        await ask(engine, "agent", prompt(BRANCH_A, "one"), echo=False)
        await ask(engine, "agent", prompt(BRANCH_B, "two"), echo=False)  # saves A + "one"
        follow = await ask(engine, "agent", _longer(BRANCH_A), echo=False)  # computes A again, saves B + "two"
        assert follow.extra["prefix_restored"] == 0
        await ask(engine, "agent", prompt(BRANCH_B, "two"), echo=False)  # saves the longer A: the old one goes
        lengths = sorted(len(s.tokens) for s in engine._contexts["agent"].snapshots)
    assert len(lengths) == 2 and follow.prompt_tokens in lengths
    assert engine.snapshot_restores == 0


def test_negative_snapshot_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        Engine(FakeBackend(), branch_snapshots=-1)


async def test_the_snapshot_being_restored_survives_the_save_that_makes_room(tmp_path: Path) -> None:
    """With room for one snapshot, going back to A saves B (the branch left) and must still restore A."""
    async with engine_for(tmp_path, branch_snapshots=1) as engine:
        await ask(engine, "agent", prompt(BRANCH_A, "one"))
        await ask(engine, "agent", prompt(BRANCH_B, "two"))
        back = await ask(engine, "agent", prompt(BRANCH_A, "three"))
        assert back.extra["prefix_restored"] > 50 and back.prefill_computed <= 4
        snaps = engine._contexts["agent"].snapshots
        assert len(snaps) == 1 and engine.snapshot_bytes == snaps[0].data.nbytes
        # A byte cap that fits one snapshot only: the same holds.
        engine.snapshot_ram_bytes = snaps[0].data.nbytes + 1
        again = await ask(engine, "agent", prompt(BRANCH_B, "four"))
        assert again.extra["prefix_restored"] > 50
        assert engine.snapshot_bytes <= engine.snapshot_ram_bytes
