"""What a goal names that an agent will need access to: the files and folders it mentions."""

from __future__ import annotations

import re

from aios.api import Context

__all__ = ["PATH", "paths_in", "request_named_paths"]

#: An absolute or ``~`` path written in text (not a URL's path, not part of a word).
PATH = re.compile(r"(?<![\w.~/:])(~?/[^\s,;'\"()<>|]+)")


def paths_in(goal: str) -> list[str]:
    """Absolute or ``~`` paths the goal mentions, in order, without trailing punctuation."""
    found = [m.rstrip(".:!?") for m in PATH.findall(goal)]
    return list(dict.fromkeys(p for p in found if len(p) > 1))


async def request_named_paths(ctx: Context, goal: str, *, write: bool = False) -> list[str]:
    """Ask for access to every path the goal names (the user is asked only for those not granted already, through
    the approval flow); the paths that stay out of reach, each reported to the user."""
    refused = []
    for path in paths_in(goal):
        if not await ctx.request(path=path, write=write, reason="the task names it"):
            refused.append(path)
            await ctx.write(f"I may not read {path}: it was not granted.\n")
    return refused
