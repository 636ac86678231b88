"""Engine mechanics (batching, context switching, priorities, faults) on the scripted runtime."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from _engine_kit import collect, engine_for

from aios.errors import UsageError
from kernel.backends.base import BatchEntry, GenerationStats, SamplingParams
from kernel.backends.fake import FakeBackend
from kernel.engine import ContextOverflow, Engine

pytestmark = pytest.mark.anyio
P = SamplingParams(max_tokens=64, temperature=0.0)


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def gather(
    engine: Engine, jobs: Sequence[tuple[Any, str, str]], params: SamplingParams = P
) -> dict[Any, tuple[str, GenerationStats]]:
    results: dict[Any, tuple[str, GenerationStats]] = {}

    async def one(key: Any, text: str, priority: str) -> None:
        results[key] = await collect(engine.submit(key, params, messages=msgs(text), priority=priority))  # type: ignore[arg-type]

    async with anyio.create_task_group() as tg:
        for job in jobs:
            tg.start_soon(one, *job)
    return results


async def test_concurrent_requests_share_decode_steps(tmp_path: Path) -> None:
    fake = FakeBackend(script=lambda m: "a b c d e f")
    async with engine_for(fake, tmp_path) as engine:
        results = await gather(engine, [(k, "go", "normal") for k in "xyz"])
    assert {t for t, _ in results.values()} == {"a b c d e f"}
    widest = max(len({seq for _, _, seq, _ in batch}) for batch in fake.batches)
    assert widest == 3


async def test_next_turn_reuses_the_context_kv(tmp_path: Path) -> None:
    fake = FakeBackend()
    async with engine_for(fake, tmp_path) as engine:
        long = " ".join(f"word{i}" for i in range(30))
        _, first = await collect(engine.submit("agent", P, messages=msgs(long)))
        conversation = [*msgs(long), {"role": "assistant", "content": f"echo: {long}"}, *msgs("four")]
        text, second = await collect(engine.submit("agent", P, messages=conversation))  # type: ignore[arg-type]
    assert text == "echo: four"
    assert first.prefill_computed == first.prompt_tokens
    reused = int(second.extra["prefix_reused"])
    assert reused >= first.prompt_tokens - 1  # everything up to the turn boundary came from the KV
    assert second.prefill_computed == second.prompt_tokens - reused


async def test_slot_pressure_swaps_and_outputs_stay_right(tmp_path: Path) -> None:
    fake = FakeBackend(script=lambda m: " ".join(["w"] * 20) + " " + m[-1]["content"], n_seq_max=1)
    async with engine_for(fake, tmp_path, quantum_tokens=1) as engine:
        engine.scheduler.levels = (1,)  # each new arrival takes the slot from a started agent
        engine.cost.rates["prefill"] = 1.0  # make recompute look expensive: always swap
        results = await gather(engine, [("a", "alpha", "normal"), ("b", "beta", "normal"), ("c", "gamma", "normal")])
    for key, word in (("a", "alpha"), ("b", "beta"), ("c", "gamma")):
        assert results[key][0].endswith(word)
    stats = [s for _, s in results.values()]
    assert sum(s.swaps for s in stats) >= 2 and sum(s.restores for s in stats) >= 2
    assert sum(s.recomputes for s in stats) == 0


async def test_dropped_context_is_recomputed_when_swap_is_impossible(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    fake = FakeBackend(script=lambda m: " ".join(["w"] * 10) + " " + m[-1]["content"], n_seq_max=1)
    engine = Engine(fake, swap_dir=blocker / "swap", swap_ram_bytes=0, quantum_tokens=1)
    engine.scheduler.levels = (1,)
    engine.cost.rates["prefill"] = 1.0
    engine.start()
    try:
        with anyio.fail_after(20):
            results = await gather(engine, [("a", "alpha", "normal"), ("b", "beta", "normal")])
    finally:
        await engine.aclose()
    assert results["a"][0].endswith("alpha") and results["b"][0].endswith("beta")
    assert sum(s.recomputes for _, s in results.values()) >= 1
    assert sum(s.swaps for _, s in results.values()) == 0


@pytest.mark.parametrize(("policy", "finished"), [("priority", ["rt", "bg"]), ("fifo", ["bg", "rt"])])
async def test_realtime_overtakes_background_unless_fifo(tmp_path: Path, policy: str, finished: list[str]) -> None:
    order: list[str] = []
    fake = FakeBackend(script=lambda m: " ".join(["t"] * 30), token_delay=0.002)
    async with engine_for(fake, tmp_path, max_batch=1, policy=policy) as engine:

        async def one(key: str, priority: str, delay: float) -> None:
            await anyio.sleep(delay)
            await collect(engine.submit(key, P, messages=msgs(key), priority=priority))
            order.append(key)

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "bg", "background", 0.0)
            tg.start_soon(one, "rt", "realtime", 0.02)
    assert order == finished


async def test_suspended_context_waits_and_is_swapped_out_first(tmp_path: Path) -> None:
    async with engine_for(FakeBackend(n_seq_max=1), tmp_path) as engine:
        engine.suspend("sleepy")
        sleepy = engine.submit("sleepy", P, messages=msgs("zzz"))
        text, _ = await collect(engine.submit("busy", P, messages=msgs("work")))
        assert text == "echo: work"
        assert engine.context_info["sleepy"]["suspended"] is True
        engine.resume("sleepy")
        text, _ = await collect(sleepy)
        assert text == "echo: zzz"
        assert engine.context_info["busy"]["residency"] in ("swapped_ram", "dropped")


async def test_stop_strings_and_max_tokens(tmp_path: Path) -> None:
    fake = FakeBackend(script=lambda m: "keep this STOP not this")
    async with engine_for(fake, tmp_path) as engine:
        text, stats = await collect(engine.submit("a", SamplingParams(stop=("STOP",)), messages=msgs("x")))
        assert text == "keep this "
        assert stats.finish_reason == "stop"
        text, stats = await collect(engine.submit("b", SamplingParams(max_tokens=2), messages=msgs("x")))
        assert text == "keep this"
        assert stats.finish_reason == "length" and stats.completion_tokens == 2


async def test_overflow_and_bad_requests_are_clear_and_change_nothing(tmp_path: Path) -> None:
    fake = FakeBackend(n_ctx_seq=16)
    async with engine_for(fake, tmp_path) as engine:
        with pytest.raises(ContextOverflow, match="does not fit the 16-token context"):
            await collect(engine.submit("a", P, messages=msgs("word " * 40)))
        with pytest.raises(UsageError, match="grammar"):
            await collect(engine.submit("a", SamplingParams(grammar="root ::= x"), messages=msgs("hi")))
        assert (await collect(engine.submit("a", P, messages=msgs("hi"))))[0] == "echo: hi"
        with pytest.raises(ValueError):
            engine.submit("a", P)


class Faulty(FakeBackend):
    """Fails any decode that contains the word 'poison' (as a broken kernel call would)."""

    def decode(self, entries: Sequence[BatchEntry]) -> None:
        if any(self._words[tok].strip() == "poison" for tok, _, _, _ in entries):
            raise RuntimeError("decode failed")
        super().decode(entries)


async def test_a_failing_request_gets_the_error_and_the_others_go_on(tmp_path: Path) -> None:
    async with engine_for(Faulty(), tmp_path) as engine:
        good = engine.submit("good", P, messages=msgs("fine"))
        bad = engine.submit("bad", P, messages=msgs("poison"))
        with pytest.raises(RuntimeError, match="decode failed"):
            await collect(bad)
        assert (await collect(good))[0] == "echo: fine"
        assert (await collect(engine.submit("later", P, messages=msgs("ok"))))[0] == "echo: ok"


async def test_cancel_and_release(tmp_path: Path) -> None:
    gate = threading.Event()
    async with engine_for(FakeBackend(gate=gate), tmp_path) as engine:
        g = engine.submit("a", P, messages=msgs("hold"))
        g.cancel()
        gate.set()
        _text, stats = await collect(g)
        assert stats.finish_reason == "cancelled"
        await collect(engine.submit("b", P, messages=msgs("x")))
        assert "b" in engine.context_info
        engine.release("b")
        await engine.run_in_engine(lambda: None)
        assert "b" not in engine.context_info
        # Its slot is free again, or holds its KV as a cached prefix (which the scheduler sees as free).
        assert sorted([*engine._free_slots, *(c.slot for c in engine._cached)]) == list(range(8))


async def test_every_engine_serves_the_one_protocol_the_kernel_depends_on() -> None:
    from kernel.backends.base import LLMEngine
    from kernel.remote_engine import RemoteEngine

    assert isinstance(Engine(FakeBackend()), LLMEngine)
    assert isinstance(RemoteEngine("http://127.0.0.1:9", model="m"), LLMEngine)


def test_greedy_sampling_skips_banned_tokens_and_leaves_the_logits_alone() -> None:
    from kernel.sampling import TokenSampler

    logits = np.array([0.0, 5.0, 9.0, 1.0], dtype=np.float32)
    assert TokenSampler(SamplingParams(temperature=0.0)).sample(logits, []) == 2
    assert TokenSampler(SamplingParams(temperature=0.0), banned=[2]).sample(logits, []) == 1
    assert logits.tolist() == [0.0, 5.0, 9.0, 1.0]
    with pytest.raises(RuntimeError, match="no token is allowed"):
        TokenSampler(SamplingParams(temperature=0.0)).sample(np.full(4, -np.inf, dtype=np.float32), [])
