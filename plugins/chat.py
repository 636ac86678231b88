"""The built-in ``chat`` agent: a conversation with the local model, kept as a task-memory tree.

In a conversation (an interactive process) the first message is the root of the conversation's task tree;
each later user message is filed into it by ``ctx.tasks.file`` (the ``task.classify`` syscall: the text's
structure decides where it can, one grammar-constrained call where it must: a new step, an update of a step,
or a question about the state; a question changes nothing). The reply's prompt is
built prefix-stable: the system prompt, the agent's core memory blocks, the task slice for the step the
message is about (its root-to-step path and dependencies, no sibling branches, no superseded values), the
last exchange, and the message. So a correction ("not Rome, Lisbon") replaces the old value instead of
competing with it in a long transcript, and prompts stay short as the conversation grows. A one-shot
(`aios run chat "…"`, not interactive) is answered plainly with one call and keeps no tree.
"""

from __future__ import annotations

from typing import Any

from aios.api import Agent, ChatMessage, Context, Manifest
from aios.hookspecs import hookimpl

__all__ = ["ChatAgent"]

SYSTEM_PROMPT = "You are a helpful, concise assistant running inside aios, an agent operating system."


class ChatAgent(Agent):
    manifest = Manifest(
        name="chat",
        description="Talk with the local model; it keeps the conversation's steps in a task tree.",
        interactive=True,
    )
    #: Earlier exchanges kept verbatim after the task slice (the tree carries the rest).
    recent_turns = 2
    #: Token budget of the task slice.
    task_budget = 600

    async def run(self, ctx: Context, goal: str) -> str | None:
        first = goal or await ctx.input()
        if first is None:
            return None
        if not ctx.interactive:
            # A one-shot (`aios run chat "…"`) is a single step: answered plainly with this one call, no tree.
            return await self._reply(
                ctx, [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": first}]
            )
        # A conversation: its first message is the task tree's root and is answered through the same layout
        # as every later one (system prompt, core blocks, the task slice, the message); it needs no
        # classification, being the root.
        tree = await ctx.tasks.create(first.strip()[:80] or "conversation", first)
        recent: list[ChatMessage] = []
        message: str | None = first
        about, new_node = tree["root_id"], False
        while message is not None:
            if recent:
                about, new_node = await self._file(ctx, tree, message)
            system = await self._system(ctx, tree["id"], about)
            window = recent[-2 * self.recent_turns :] if self.recent_turns else []
            answer = await self._reply(
                ctx, [{"role": "system", "content": system}, *window, {"role": "user", "content": message}]
            )
            if new_node and answer:
                await ctx.tasks.update(tree["id"], about, output=answer[:500], status="done")
            recent += [{"role": "user", "content": message}, {"role": "assistant", "content": answer}]
            await ctx.end_turn()
            message = await ctx.input()
        return answer

    async def _reply(self, ctx: Context, messages: list[ChatMessage]) -> str:
        pieces: list[str] = []
        async for piece in ctx.llm.chat(messages):
            pieces.append(piece)
            await ctx.write(piece)
        return "".join(pieces).strip()

    async def _system(self, ctx: Context, tree: int, about: int) -> str:
        core = (await ctx.memory.core())["rendered"]
        task = await ctx.tasks.prompt(tree, about, budget=self.task_budget)
        return "\n\n".join(part for part in (SYSTEM_PROMPT, core, task) if part)

    async def _file(self, ctx: Context, tree: dict[str, Any], message: str) -> tuple[int, bool]:
        """File ``message`` into the tree: returns (the step the reply is about, whether it is a new step)."""
        filed = await ctx.tasks.file(tree["id"], message)
        ctx.log.debug("turn filed as %s (by %s)", filed["kind"], filed["by"])
        return int(filed["about"]), bool(filed["new"])


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [ChatAgent]
