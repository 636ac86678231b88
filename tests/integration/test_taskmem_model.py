"""Turn classification and the chat agent's task tree on the real bundled model (marker: model)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aios.config import Config, LLMConfig
from aios.errors import AiosError
from kernel import load_runtime, open_kernel
from memory.store import Store
from memory.tasktree import TaskTreeStore

pytestmark = [pytest.mark.model, pytest.mark.anyio]


@pytest.fixture
def runtime():  # type: ignore[no-untyped-def]
    return load_runtime(Config(llm=LLMConfig(n_ctx=2048)))


async def test_chat_agent_asks_the_model_only_where_the_rules_cannot_decide(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(180):
            async with open_kernel(
                Config(llm=LLMConfig(temperature=0.0, max_tokens=24)), runtime=runtime, store=store
            ) as kernel:
                pid = await kernel.spawn("chat", "Plan a weekend trip to Rome.", interactive=True)
                for text in (
                    "Find a hotel near the centre.",
                    "Correction: the destination is Lisbon.",
                    "Where are we staying?",
                ):
                    await kernel.send(pid, text)
                await kernel.close_input(pid)
                info = await kernel.wait(pid)
        assert info["state"] == "exited" and info["exit_code"] == 0, info
        # the first message (the root) is answered without classifying it; every later one gets one reply, and
        # a classification call only where the rules cannot decide: "Find a hotel" is a new step and "Where
        # ...?" a question by their structure; a correction naming no step yet ("the destination") needs the model
        assert info["llm_calls"] == 1 + 3 + 1
        tasks = TaskTreeStore(store.db)
        (tree,) = tasks.trees(pid=pid)
        nodes = tasks.nodes(tree["id"])
        assert nodes[0]["title"] == "Plan a weekend trip to Rome."
        assert 1 <= len(nodes) <= 4  # whatever the small model decided, each turn changed at most one step
        denied = [r for r in store.audit_rows(denied_only=True) if r["pid"] == pid]
        assert denied == []
    finally:
        store.close()


async def test_json_schema_constrains_the_reply(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from memory.taskclassify import classification_messages, classification_schema, parse_classification

    steps = [{"id": 3, "title": "Destination", "output": "Rome"}, {"id": 4, "title": "Hotel", "output": ""}]
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(120):
            async with open_kernel(Config(), runtime=runtime, store=store) as kernel:
                from kernel.syscalls import LLMChatRequest

                proc = kernel._procs.get(await kernel.spawn("chat", interactive=True))
                assert proc is not None
                request = LLMChatRequest.model_validate(
                    {
                        "messages": classification_messages(steps, "Actually make the destination Lisbon."),
                        "json_schema": classification_schema([3, 4]),
                        "max_tokens": 100,
                        "temperature": 0.0,
                    }
                )
                raw = "".join([p async for p in kernel.llm_chat(proc, request)])
                await kernel.kill(proc.pid)
        parsed = parse_classification(raw, [3, 4])  # always valid JSON of the schema, right or wrong
        assert parsed.kind in ("new_step", "update", "question")
    finally:
        store.close()


async def test_task_prompt_budget_counts_real_tokens(runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from memory.taskprompt import estimate_tokens

    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(60):
            async with open_kernel(Config(), runtime=runtime, store=store) as kernel:
                proc = kernel._procs.get(await kernel.spawn("chat", interactive=True))
                assert proc is not None
                title = "Plan a relaxed weekend trip to Lisbon with a hotel near the river and a dinner booking"
                tree = await kernel.dispatch(proc, "task.create", {"title": title})
                wide = await kernel.dispatch(proc, "task.prompt", {"tree": tree["id"], "budget": 10_000})
                real = len(runtime.tokenize(wide["text"]))
                assert wide["counter"] == "tokenizer" and wide["tokens"] == real
                assert real < estimate_tokens(wide["text"])  # English BPE: fewer tokens than characters / 3
                fits = await kernel.dispatch(proc, "task.prompt", {"tree": tree["id"], "budget": real})
                assert fits["text"] == wide["text"]
                with pytest.raises(AiosError, match=f"a budget of {real - 1} tokens cannot fit"):
                    await kernel.dispatch(proc, "task.prompt", {"tree": tree["id"], "budget": real - 1})
                await kernel.kill(proc.pid)
    finally:
        store.close()
