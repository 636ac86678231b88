"""The built-in ``chat`` agent: a conversation with the local model that remembers its own turns."""

from __future__ import annotations

from aios.api import Agent, ChatMessage, Context, Manifest
from aios.hookspecs import hookimpl

__all__ = ["ChatAgent"]

SYSTEM_PROMPT = "You are a helpful, concise assistant running inside aios, an agent operating system."


class ChatAgent(Agent):
    manifest = Manifest(
        name="chat",
        description="Talk with the local model; it remembers the earlier turns of this conversation.",
        interactive=True,
    )
    #: Earlier exchanges kept in the prompt; older ones fall out so the prompt fits small models.
    max_history_turns = 8

    async def run(self, ctx: Context, goal: str) -> str | None:
        history: list[ChatMessage] = []
        answer: str | None = None
        message = goal or await ctx.input()
        while message is not None:
            history.append({"role": "user", "content": message})
            window = history[-(2 * self.max_history_turns + 1) :]
            pieces: list[str] = []
            async for piece in ctx.llm.chat([{"role": "system", "content": SYSTEM_PROMPT}, *window]):
                pieces.append(piece)
                await ctx.write(piece)
            answer = "".join(pieces).strip()
            history.append({"role": "assistant", "content": answer})
            await ctx.end_turn()
            message = await ctx.input()
        return answer


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [ChatAgent]
