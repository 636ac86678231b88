"""bench/taskmem: flat chat history vs task-tree prompts on the bundled model, over scripted dialogues.

For every turn of four scripted dialogues (bench/_taskmem_dialogues.py: a trip with a later correction,
recipes sharing an ingredient that gets replaced, a meeting split then merged, a cart with add/remove/
"actually keep") one agent process of a real kernel on SmolLM2:

1. asks the model to classify the turn (ONE grammar-constrained ``llm.chat``; scored, never applied),
2. files the turn with the scripted classification through the ``task.*`` syscalls,
3. answers it twice: (a) with the flat history (system + every earlier turn and reply + the message) and
   (b) with the task-tree prompt (system + ``task.prompt`` for the step the turn is about + the message).

Prompt tokens are the engine's own counts (the real tokenizer over the chat template), read from the
process's accounting around each call. A superseded value "leaks" when it appears in a prompt outside the
current user message after it was superseded. The final tree of each dialogue must pass its checks.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import anyio

from bench._results import write_result
from bench._taskmem_dialogues import DIALOGUES, Dialogue, Turn

SYSTEM = "You are a helpful, concise assistant. Answer in one or two sentences."
REPLY_TOKENS = 40
TASK_BUDGET = 400

_OUT: dict[str, Any] = {}


async def _prompt_tokens(ctx: Any) -> int:
    return int((await ctx.call("proc.self"))["prompt_tokens"] or 0)


async def _ask(ctx: Any, messages: list[dict[str, str]], **kwargs: Any) -> tuple[str, int]:
    before = await _prompt_tokens(ctx)
    pieces = [p async for p in ctx.llm.chat(messages, **kwargs)]
    return "".join(pieces).strip(), await _prompt_tokens(ctx) - before


def _leaks(text: str, superseded: set[str]) -> int:
    return sum(1 for value in superseded if value in text)


async def _apply(ctx: Any, tree: int, root: int, keys: dict[str, int], turn: Turn) -> int:
    """File the turn with its scripted classification; returns the node the reply is about."""
    about = root
    for op in turn.ops:
        verb = op[0]
        if verb == "add":
            _, key, title, value, parent, deps = op
            node = await ctx.call(
                "task.add",
                tree=tree,
                title=title,
                input=turn.user,
                output=value,
                status="done",
                parent=keys[parent] if parent else None,
                depends_on=[keys[d] for d in deps],
            )
            keys[key] = about = node["id"]
        elif verb == "update":
            about = (await ctx.call("task.update", tree=tree, node=keys[op[1]], output=op[2]))["id"]
        elif verb == "replace":
            _, olds, new_key, title, value = op
            node = await ctx.call("task.replace", tree=tree, nodes=[keys[k] for k in olds], title=title, output=value)
            keys[new_key] = about = node["id"]
        elif verb == "drop":
            about = (await ctx.call("task.supersede", tree=tree, node=keys[op[1]]))["parent_id"]
        elif verb == "rollback":
            node = await ctx.call("task.get", tree=tree)
            version = next(n["version"] for n in node["nodes"] if n["id"] == keys[op[1]])
            about = (await ctx.call("task.rollback", tree=tree, node=keys[op[1]], version=version - 1))["id"]
        elif verb == "ask":
            about = keys[op[1]] if op[1] else root
        else:
            raise ValueError(f"unknown op {verb}")
    if about != root and turn.kind != "question":
        await ctx.call("task.activate", tree=tree, node=about)
    return about


def _classified_right(turn: Turn, got: dict[str, Any], keys: dict[str, int]) -> bool:
    if got.get("kind") != turn.kind:
        return False
    if turn.kind == "new_step":
        return True
    wanted = {keys[k] for k in turn.targets if k in keys}
    return got.get("node") in wanted if wanted else got.get("node") is None


async def _dialogue(ctx: Any, dialogue: Dialogue) -> dict[str, Any]:
    from memory.taskclassify import classification_messages, classification_schema, parse_classification

    tree_row = await ctx.call("task.create", title=dialogue.title)
    tree, root = tree_row["id"], tree_row["root_id"]
    keys: dict[str, int] = {}
    history: list[dict[str, str]] = []
    superseded: set[str] = set()
    turns = []
    for turn in dialogue.turns:
        state = await ctx.call("task.get", tree=tree)
        steps = [n for n in state["nodes"] if n["status"] != "superseded" and n["id"] != root]
        ids = [s["id"] for s in steps]
        raw, classify_tokens = await _ask(
            ctx,
            classification_messages(steps, turn.user),
            json_schema=classification_schema(ids),
            max_tokens=100,
            temperature=0.0,
        )
        try:
            got = parse_classification(raw, ids).as_dict()
        except Exception as exc:
            got = {"error": str(exc)}
        right = _classified_right(turn, got, keys)
        about = await _apply(ctx, tree, root, keys, turn)
        superseded |= set(turn.supersedes)
        superseded -= set(turn.restores)
        flat_messages = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": turn.user}]
        flat_reply, flat_tokens = await _ask(ctx, flat_messages, max_tokens=REPLY_TOKENS, temperature=0.0, seed=1)
        task = await ctx.call("task.prompt", tree=tree, node=about, budget=TASK_BUDGET)
        tree_messages = [
            {"role": "system", "content": f"{SYSTEM}\n\n{task['text']}"},
            {"role": "user", "content": turn.user},
        ]
        tree_reply, tree_tokens = await _ask(ctx, tree_messages, max_tokens=REPLY_TOKENS, temperature=0.0, seed=1)
        context = lambda msgs: "\n".join(m["content"] for m in msgs[:-1])  # noqa: E731
        turns.append(
            {
                "user": turn.user,
                "kind": turn.kind,
                "classified": got,
                "classified_right": right,
                "flat_prompt_tokens": flat_tokens,
                "tree_prompt_tokens": tree_tokens,
                "classify_prompt_tokens": classify_tokens,
                "flat_leaks": _leaks(context(flat_messages), superseded),
                "tree_leaks": _leaks(context(tree_messages), superseded),
                "tree_reply": tree_reply,
            }
        )
        history += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": flat_reply}]
    final = await ctx.call("task.get", tree=tree)
    by_id = {n["id"]: n for n in final["nodes"]}
    live = [n for n in final["nodes"] if n["status"] != "superseded" and n["id"] != root]
    checks = {desc: bool(check(lambda k: by_id[keys[k]], live)) for desc, check in dialogue.checks}
    return {"name": dialogue.name, "turns": turns, "checks": checks}


async def _run() -> list[dict[str, Any]]:
    from aios import Agent, Capabilities, Context, Manifest
    from aios.config import load_config
    from aios.hookspecs import hookimpl
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel

    class TaskMemBench(Agent):
        manifest = Manifest(name="taskmem-bench", capabilities=Capabilities(llm_token_budget=10**9))

        async def run(self, ctx: Context, goal: str) -> str | None:
            _OUT["dialogues"] = [await _dialogue(ctx, d) for d in DIALOGUES]
            return "done"

    class Plugins:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return [TaskMemBench]

    plugins = PluginManager(load_entry_points=False)
    plugins.register(Plugins(), name="taskmem-bench")
    config = load_config()
    async with open_kernel(config, plugins=plugins) as kernel:
        info = await kernel.wait(await kernel.spawn("taskmem-bench", "run"))
        if info["state"] != "exited" or info.get("exit_code"):
            raise RuntimeError(f"bench agent failed: {info.get('error')}")
        _OUT["model"] = kernel.model_name
    return _OUT["dialogues"]


def main() -> None:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    started = time.monotonic()
    dialogues = anyio.run(_run)
    turns = [t for d in dialogues for t in d["turns"]]
    flat = sum(t["flat_prompt_tokens"] for t in turns)
    tree = sum(t["tree_prompt_tokens"] for t in turns)
    checks = [ok for d in dialogues for ok in d["checks"].values()]
    failed = [f"{d['name']}: {desc}" for d in dialogues for desc, ok in d["checks"].items() if not ok]
    write_result(
        "taskmem",
        params={
            "model": _OUT.get("model"),
            "dialogues": [d["name"] for d in dialogues],
            "turns": len(turns),
            "reply_tokens": REPLY_TOKENS,
            "task_budget": TASK_BUDGET,
            "temperature": 0.0,
        },
        metrics={
            "prompt_token_reduction": round((flat - tree) / flat, 4),
            "superseded_leaks_tree": sum(t["tree_leaks"] for t in turns),
            "superseded_leaks_flat": sum(t["flat_leaks"] for t in turns),
            "classification_accuracy": round(sum(t["classified_right"] for t in turns) / len(turns), 4),
            "tree_prompt_tokens_total": tree,
            "tree_prompt_tokens_per_turn": [t["tree_prompt_tokens"] for t in turns],
            "classify_prompt_tokens_total": sum(t["classify_prompt_tokens"] for t in turns),
            "final_state_checks_passed": sum(checks),
            "final_state_checks_total": len(checks),
            "wall_s": round(time.monotonic() - started, 1),
        },
        baseline={
            "flat_prompt_tokens_total": flat,
            "flat_prompt_tokens_per_turn": [t["flat_prompt_tokens"] for t in turns],
        },
        ratio={"tree_over_flat_prompt_tokens": round(tree / flat, 4)},
        notes=("final-state checks failed: " + "; ".join(failed)) if failed else "all final-state checks passed",
    )
    detail = os.environ.get("AIOS_BENCH_TASKMEM_DETAIL")
    if detail:
        import json
        from pathlib import Path

        Path(detail).write_text(json.dumps(dialogues, indent=2))


if __name__ == "__main__":
    main()
