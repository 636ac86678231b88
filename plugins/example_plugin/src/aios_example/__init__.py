"""An example aios plugin: the ``wordcount`` agent and the ``count_words`` tool it calls through the kernel."""

from __future__ import annotations

from aios import Agent, Capabilities, Context, Manifest, hookimpl, tool

__all__ = ["WordCountAgent", "count_words"]


@tool(read_only=True)
def count_words(text: str, unique: bool = False) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
        unique: Count each distinct word (case-insensitive) once.
    """
    words = text.split()
    return len({w.lower() for w in words}) if unique else len(words)


class WordCountAgent(Agent):
    manifest = Manifest(
        name="wordcount",
        description="Counts the words of its goal with the example.count_words tool, then comments briefly.",
        # Only its own tool and a small LLM budget: every other syscall is denied.
        capabilities=Capabilities(tools=("example.count_words",), llm_token_budget=5_000),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        result = await ctx.tools.call("example.count_words", {"text": goal})
        if result["is_error"]:
            await ctx.write(f"the tool failed: {result['text']}\n")
            return None
        count = int(result["text"])
        comment = await ctx.llm.complete(f"In one short sentence, comment on a text of {count} words.", max_tokens=40)
        await ctx.write(f"{count} words. {comment}\n")
        return str(count)


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [WordCountAgent]


@hookimpl
def register_tools() -> list[object]:
    return [count_words]
