"""The built-in ``summarizer`` agent: summaries of the user's files, through the semantic file system.

The goal is a path (a file or a folder in a mount), a view (``@VIEW``), or words to search for. A path or view
is summarised as it is; words find the best few files (``fs.search``), each summarised. Summaries come from
``fs.summarize`` (cached by content hash, so asking twice costs nothing), under the agent's file grants.
"""

from __future__ import annotations

import os

from aios.api import Agent, Capabilities, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl

__all__ = ["SummarizerAgent"]


def _looks_like_path(goal: str) -> bool:
    return goal.startswith(("/", "~", "./", "@")) or (os.path.sep in goal and " " not in goal)


class SummarizerAgent(Agent):
    manifest = Manifest(
        name="summarizer",
        description="Summarise a file, a folder, a view, or the files that match some words.",
        capabilities=Capabilities(files_read=("~",), llm_token_budget=100_000),
    )
    #: How many search hits are summarised for a goal in words.
    files = 3

    async def run(self, ctx: Context, goal: str) -> str | None:
        goal = goal.strip()
        if not goal:
            await ctx.write("Give me a file, a folder, a view (@NAME) or words to look for.\n")
            return None
        if _looks_like_path(goal):
            targets = [goal]
        else:
            hits = await ctx.fs.search(goal, k=self.files)
            targets = [str(h["path"]) for h in hits]
            if not targets:
                await ctx.write(f"No file I may read matches {goal!r}.\n")
                return None
        parts = []
        for target in targets:
            try:
                summary = await ctx.fs.summarize(target)
            except AiosError as exc:
                await ctx.write(f"{target}: {exc.one_line()}\n")
                continue
            parts.append(f"{target}: {summary}")
            await ctx.write(parts[-1] + "\n")
        await ctx.end_turn()
        return "\n".join(parts) or None


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [SummarizerAgent]
