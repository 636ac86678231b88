"""bench/taskmem: flat chat history vs task-tree prompts on the bundled model, over scripted dialogues.

Four scripted dialogues (bench/_taskmem_dialogues.py: a trip with a later correction, recipes sharing an
ingredient that gets replaced, a meeting split then merged, a cart with add/remove/"actually keep") are played
by three agent processes of one real kernel on SmolLM2, one after another, so each has its own KV sequence:

- ``flat`` answers every turn with the flat history (system + every earlier turn and reply + the message);
- ``tree`` classifies every turn with ``task.classify`` (the shipped path: the text's structure decides where
  it can, one grammar-constrained call where it must; scored, never applied), files it with the scripted
  operations through the ``task.*`` syscalls, and answers with the task-tree prompt (system + ``task.prompt``
  for the step the turn is about + the message), as the chat agent does;
- ``probe`` replays the same operations on its own trees and asks the model alone (``rules=False``) for each
  classification: the baseline accuracy of the model without the rules.

Two token counts, both the engine's own: prompt tokens (the real tokenizer over the chat template) and
computed prefill tokens (what the engine actually decoded after reusing the sequence's KV cache, i.e. what
costs time). The tree's counts include its classification calls. A superseded value "leaks" when it appears
in a prompt outside the current user message after it was superseded. The final tree of each dialogue must
pass its checks.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from typing import Any

import anyio

from bench._results import write_result
from bench._taskmem_dialogues import DIALOGUES, Dialogue, Turn
from memory.taskprompt import estimate_tokens

SYSTEM = "You are a helpful, concise assistant. Answer in one or two sentences."
REPLY_TOKENS = 40
TASK_BUDGET = 400

_OUT: dict[str, Any] = {}

#: The long dialogue's items: (key, title, first quantity, later quantity); no value is a substring of another.
_PANTRY = (
    ("milk", "Milk", "two litres of milk", "three litres of milk"),
    ("eggs", "Eggs", "half a dozen eggs", "eighteen eggs"),
    ("bread", "Bread", "one sourdough loaf", "two baguettes"),
    ("coffee", "Coffee", "a bag of coffee beans", "a jar of instant coffee"),
    ("rice", "Rice", "a kilo of basmati rice", "two kilos of jasmine rice"),
    ("pasta", "Pasta", "three packs of penne", "four packs of fusilli"),
    ("apples", "Apples", "six green apples", "ten red apples"),
    ("cheese", "Cheese", "a block of cheddar", "a wedge of gouda"),
    ("tomatoes", "Tomatoes", "a tin of chopped tomatoes", "five fresh tomatoes"),
    ("yoghurt", "Yoghurt", "a tub of greek yoghurt", "four small yoghurts"),
    ("chicken", "Chicken", "a whole chicken", "four chicken thighs"),
    ("onions", "Onions", "a net of onions", "three red onions"),
    ("tea", "Tea", "a box of green tea", "a box of earl grey"),
    ("oats", "Oats", "a bag of rolled oats", "a tub of porridge oats"),
    ("bananas", "Bananas", "a bunch of bananas", "two ripe bananas"),
    ("butter", "Butter", "a pat of salted butter", "a block of vegan butter"),
    ("flour", "Flour", "a kilo of plain flour", "a bag of bread flour"),
    ("honey", "Honey", "a jar of runny honey", "a squeezy bottle of honey"),
    ("beans", "Beans", "two tins of baked beans", "three tins of kidney beans"),
    ("spinach", "Spinach", "a bag of baby spinach", "a box of frozen spinach"),
)


def _pantry() -> Dialogue:
    """A long dialogue (a month's shopping list kept in one chat): every item added, asked about, changed or
    removed, with "what is in the cart" now and then; built from the cart dialogue's kinds of turn, long
    enough that flat history outgrows the model's context (2,048 tokens by default) and must be cut."""
    turns: list[Turn] = []
    live: dict[str, str] = {}
    title = {k: t for k, t, _, _ in _PANTRY}
    for i, (key, name, first, _) in enumerate(_PANTRY):
        turns.append(Turn(f"Add {first} to the list.", "new_step", (), (("add", key, name, first, None, []),)))
        live[key] = first
        if i % 3 == 2:
            turns.append(Turn(f"How much {name.lower()} is on the list?", "question", (key,), (("ask", key),)))
        if i % 7 == 6:
            turns.append(Turn("What is on the list now?", "question", (), (("ask", None),)))
    for i, (key, name, first, later) in enumerate(_PANTRY):
        if i % 5 == 4:
            turns.append(Turn(f"Remove the {name.lower()}.", "update", (key,), (("drop", key),), supersedes=(first,)))
            del live[key]
        else:
            turns.append(
                Turn(
                    f"Make the {name.lower()} {later} instead.",
                    "update",
                    (key,),
                    (("update", key, later),),
                    supersedes=(first,),
                )
            )
            live[key] = later
            if i % 3 == 1:
                turns.append(Turn(f"How much {name.lower()} is on the list now?", "question", (key,), (("ask", key),)))
        if i % 4 == 3:
            turns.append(Turn("What is on the list now?", "question", (), (("ask", None),)))
    final_titles = {title[k] for k in live}
    final = dict(live)
    return Dialogue(
        "pantry",
        "Shopping list for the month",
        tuple(turns),
        (
            ("the list holds exactly the items kept", lambda node, nodes: {n["title"] for n in nodes} == final_titles),
            (
                "every kept item has its latest quantity",
                lambda node, nodes: all(node(k)["output"] == v for k, v in final.items()),
            ),
        ),
    )


#: The four short dialogues, then the long one (reported apart: ``metrics.short`` / ``metrics.long``).
ALL: tuple[Dialogue, ...] = (*DIALOGUES, _pantry())


async def _tokens(ctx: Any) -> tuple[int, int]:
    """(prompt tokens, computed prefill tokens) of the process so far."""
    me = await ctx.call("proc.self")
    return int(me["prompt_tokens"] or 0), int(me["prefill_computed"] or 0)


async def _counted(ctx: Any, coro: Any) -> tuple[Any, int, int]:
    """Await ``coro``; what it returned and the prompt and computed tokens it cost this process."""
    prompt, computed = await _tokens(ctx)
    result = await coro
    prompt_after, computed_after = await _tokens(ctx)
    return result, prompt_after - prompt, computed_after - computed


async def _reply(ctx: Any, messages: list[dict[str, str]]) -> str:
    pieces = [p async for p in ctx.llm.chat(messages, max_tokens=REPLY_TOKENS, temperature=0.0, seed=1)]
    return "".join(pieces).strip()


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


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _value_right(turn: Turn, got: dict[str, Any], outputs: dict[str, str]) -> bool | None:
    """For an update that gives a step a new value: whether the classification carried it (every word of the
    new value that the user actually typed and the old value lacked). None for other turns."""
    for op in turn.ops:
        if op[0] in ("update", "replace"):
            old_keys = [op[1]] if op[0] == "update" else list(op[1])
            new = op[2] if op[0] == "update" else op[4]
            old = " ".join(outputs.get(k, "") for k in old_keys)
            wanted = (_words(new) - _words(old)) & _words(turn.user)
            return bool(wanted) and wanted <= _words(str(got.get("value") or ""))
    return None


def _context(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages[:-1])


async def _flat(ctx: Any, dialogue: Dialogue, n_ctx: int) -> list[dict[str, Any]]:
    """Flat history, KV-friendly as a careful chat client would keep it: append-only while it fits the
    sequence's context; when the next turn would not fit (prompt + message + a full reply), the oldest half of
    the exchanges is dropped at once (one recompute per overflow, not one per turn as a sliding window would)."""
    history: list[dict[str, str]] = []
    superseded: set[str] = set()
    turns = []
    last_prompt = 0
    for turn in dialogue.turns:
        superseded = (superseded | set(turn.supersedes)) - set(turn.restores)
        truncated = False
        if history and last_prompt + 2 * REPLY_TOKENS + estimate_tokens(turn.user) + 16 > n_ctx:
            pairs = len(history) // 2
            history = history[2 * ((pairs + 1) // 2) :]
            truncated = True
        messages = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": turn.user}]
        reply, prompt, computed = await _counted(ctx, _reply(ctx, messages))
        last_prompt = prompt
        turns.append(
            {
                "prompt_tokens": prompt,
                "computed_tokens": computed,
                "leaks": _leaks(_context(messages), superseded),
                "truncated": truncated,
            }
        )
        history += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": reply}]
    return turns


async def _tree(ctx: Any, dialogue: Dialogue, *, replies: bool = True, rules: bool = True) -> dict[str, Any]:
    tree_row = await ctx.call("task.create", title=dialogue.title)
    tree, root = tree_row["id"], tree_row["root_id"]
    keys: dict[str, int] = {}
    superseded: set[str] = set()
    turns = []
    for turn in dialogue.turns:
        before = await ctx.call("task.get", tree=tree)
        outputs = {k: n["output"] for n in before["nodes"] for k, i in keys.items() if n["id"] == i}
        try:
            got, classify_prompt, classify_computed = await _counted(
                ctx, ctx.call("task.classify", tree=tree, message=turn.user, rules=rules)
            )
        except Exception as exc:
            got, classify_prompt, classify_computed = {"error": str(exc)}, 0, 0
        row: dict[str, Any] = {
            "user": turn.user,
            "kind": turn.kind,
            "classified": got,
            "classified_right": _classified_right(turn, got, keys),
            "value_right": _value_right(turn, got, outputs),
            "classify_prompt_tokens": classify_prompt,
            "classify_computed_tokens": classify_computed,
        }
        about = await _apply(ctx, tree, root, keys, turn)
        superseded = (superseded | set(turn.supersedes)) - set(turn.restores)
        if replies:
            task = await ctx.call("task.prompt", tree=tree, node=about, budget=TASK_BUDGET)
            messages = [
                {"role": "system", "content": f"{SYSTEM}\n\n{task['text']}"},
                {"role": "user", "content": turn.user},
            ]
            reply, prompt, computed = await _counted(ctx, _reply(ctx, messages))
            row.update(
                prompt_tokens=prompt,
                computed_tokens=computed,
                leaks=_leaks(_context(messages), superseded),
                reply=reply,
            )
        turns.append(row)
    final = await ctx.call("task.get", tree=tree)
    by_id = {n["id"]: n for n in final["nodes"]}
    live = [n for n in final["nodes"] if n["status"] != "superseded" and n["id"] != root]
    checks = {desc: bool(check(lambda k: by_id[keys[k]], live)) for desc, check in dialogue.checks}
    return {"name": dialogue.name, "turns": turns, "checks": checks}


async def _run() -> dict[str, Any]:
    from aios import Agent, Capabilities, Context, Manifest
    from aios.config import load_config
    from aios.hookspecs import hookimpl
    from aios.plugin_manager import PluginManager
    from kernel import open_kernel

    caps = Capabilities(llm_token_budget=10**9)
    config = load_config()
    n_ctx = config.llm.n_ctx

    class Flat(Agent):
        manifest = Manifest(name="taskmem-flat", capabilities=caps)

        async def run(self, ctx: Context, goal: str) -> str | None:
            _OUT["flat"] = [await _flat(ctx, d, n_ctx) for d in ALL]
            return "done"

    class Tree(Agent):
        manifest = Manifest(name="taskmem-tree", capabilities=caps)

        async def run(self, ctx: Context, goal: str) -> str | None:
            _OUT["tree"] = [await _tree(ctx, d) for d in ALL]
            return "done"

    class Probe(Agent):
        manifest = Manifest(name="taskmem-probe", capabilities=caps)

        async def run(self, ctx: Context, goal: str) -> str | None:
            _OUT["probe"] = [await _tree(ctx, d, replies=False, rules=False) for d in ALL]
            return "done"

    class Plugins:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return [Flat, Tree, Probe]

    plugins = PluginManager(load_entry_points=False)
    plugins.register(Plugins(), name="taskmem-bench")
    async with open_kernel(config, plugins=plugins) as kernel:
        for agent in ("taskmem-flat", "taskmem-tree", "taskmem-probe"):
            info = await kernel.wait(await kernel.spawn(agent, "run"))
            if info["state"] != "exited" or info.get("exit_code"):
                raise RuntimeError(f"bench agent {agent} failed: {info.get('error')}")
        _OUT["model"] = kernel.model_name
        _OUT["n_ctx"] = n_ctx
    return _OUT


def _part(out: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """The numbers of the named dialogues."""
    pick = [i for i, d in enumerate(out["tree"]) if d["name"] in names]
    flat = [t for i in pick for t in out["flat"][i]]
    tree = [t for i in pick for t in out["tree"][i]["turns"]]
    probe = [t for i in pick for t in out["probe"][i]["turns"]]
    flat_prompt = sum(t["prompt_tokens"] for t in flat)
    flat_computed = sum(t["computed_tokens"] for t in flat)
    tree_prompt = sum(t["prompt_tokens"] + t["classify_prompt_tokens"] for t in tree)
    tree_computed = sum(t["computed_tokens"] + t["classify_computed_tokens"] for t in tree)
    values = [t["value_right"] for t in tree if t["value_right"] is not None]
    return {
        "turns": len(tree),
        "computed_token_reduction": round((flat_computed - tree_computed) / flat_computed, 4),
        "prompt_token_reduction": round((flat_prompt - tree_prompt) / flat_prompt, 4),
        "classification_accuracy": round(sum(t["classified_right"] for t in tree) / len(tree), 4),
        "classified_by_rule": round(sum(t["classified"].get("by") == "rule" for t in tree) / len(tree), 4),
        "update_values_carried": f"{sum(bool(v) for v in values)}/{len(values)}",
        "superseded_leaks_tree": sum(t["leaks"] for t in tree),
        "superseded_leaks_flat": sum(t["leaks"] for t in flat),
        "tree_computed_tokens_total": tree_computed,
        "tree_prompt_tokens_total": tree_prompt,
        "flat_computed_tokens_total": flat_computed,
        "flat_prompt_tokens_total": flat_prompt,
        "flat_truncations": sum(bool(t.get("truncated")) for t in flat),
        "classify_computed_tokens_total": sum(t["classify_computed_tokens"] for t in tree),
        "classify_prompt_tokens_total": sum(t["classify_prompt_tokens"] for t in tree),
        "tree_computed_tokens_per_turn": [t["computed_tokens"] + t["classify_computed_tokens"] for t in tree],
        "flat_computed_tokens_per_turn": [t["computed_tokens"] for t in flat],
        "flat_prompt_tokens_per_turn": [t["prompt_tokens"] for t in flat],
        "classification_accuracy_model_only": round(sum(t["classified_right"] for t in probe) / len(probe), 4),
        "classify_prompt_tokens_model_only": sum(t["classify_prompt_tokens"] for t in probe),
    }


def main() -> None:
    os.environ.setdefault("AIOS_HOME", tempfile.mkdtemp(prefix="aios-bench-"))
    started = time.monotonic()
    out = anyio.run(_run)
    short_names = {d.name for d in DIALOGUES}
    every = _part(out, {d.name for d in ALL})
    short = _part(out, short_names)
    long = _part(out, {d.name for d in ALL} - short_names)
    checks = [ok for d in out["tree"] for ok in d["checks"].values()]
    failed = [f"{d['name']}: {desc}" for d in out["tree"] for desc, ok in d["checks"].items() if not ok]
    headline = (
        "computed_token_reduction",
        "prompt_token_reduction",
        "classification_accuracy",
        "classified_by_rule",
        "update_values_carried",
        "superseded_leaks_tree",
        "superseded_leaks_flat",
        "tree_computed_tokens_total",
        "tree_prompt_tokens_total",
        "classify_computed_tokens_total",
        "classify_prompt_tokens_total",
    )
    apart = (
        "flat_computed_tokens_total",
        "flat_prompt_tokens_total",
        "flat_truncations",
        "classification_accuracy_model_only",
    )
    write_result(
        "taskmem",
        params={
            "model": out.get("model"),
            "dialogues": [d.name for d in ALL],
            "short_dialogues": sorted(short_names),
            "turns": every["turns"],
            "turns_short": short["turns"],
            "reply_tokens": REPLY_TOKENS,
            "task_budget": TASK_BUDGET,
            "n_ctx": out.get("n_ctx"),
            "temperature": 0.0,
            "layout": "flat, tree and probe each one process (its own KV sequence), run one after another",
            "flat_truncation": "when the next turn would not fit n_ctx, the oldest half of the exchanges is dropped",
        },
        metrics={
            **{k: every[k] for k in headline},
            "final_state_checks_passed": sum(checks),
            "final_state_checks_total": len(checks),
            "short": {k: short[k] for k in (*headline, *apart)},
            "long": {k: long[k] for k in (*headline, *apart)},
            "wall_s": round(time.monotonic() - started, 1),
        },
        baseline={
            "flat_computed_tokens_total": every["flat_computed_tokens_total"],
            "flat_prompt_tokens_total": every["flat_prompt_tokens_total"],
            "flat_truncations": every["flat_truncations"],
            "classification_accuracy_model_only": every["classification_accuracy_model_only"],
            "classify_prompt_tokens_model_only": every["classify_prompt_tokens_model_only"],
            "short_flat_computed_tokens_per_turn": short["flat_computed_tokens_per_turn"],
            "short_flat_prompt_tokens_per_turn": short["flat_prompt_tokens_per_turn"],
            "long_flat_computed_tokens_per_turn": long["flat_computed_tokens_per_turn"],
            "long_flat_prompt_tokens_per_turn": long["flat_prompt_tokens_per_turn"],
        },
        ratio={
            "tree_over_flat_computed_tokens": round(
                every["tree_computed_tokens_total"] / every["flat_computed_tokens_total"], 4
            ),
            "tree_over_flat_prompt_tokens": round(
                every["tree_prompt_tokens_total"] / every["flat_prompt_tokens_total"], 4
            ),
            "short_tree_computed_tokens_per_turn": short["tree_computed_tokens_per_turn"],
            "long_tree_computed_tokens_per_turn": long["tree_computed_tokens_per_turn"],
        },
        notes=("final-state checks failed: " + "; ".join(failed)) if failed else "all final-state checks passed",
    )
    detail = os.environ.get("AIOS_BENCH_TASKMEM_DETAIL")
    if detail:
        import json
        from pathlib import Path

        Path(detail).write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
