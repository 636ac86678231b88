"""The built-in ``chat`` agent: a conversation with the local model, kept as a task-memory tree.

In a conversation (an interactive process) the first message is the root of the conversation's task tree;
each later user message is filed into it by ``ctx.tasks.file`` (the ``task.classify`` syscall: the text's
structure decides where it can, one grammar-constrained call where it must: a new step, an update of a step,
or a question about the state; a question changes nothing). The reply's prompt is
built prefix-stable: the system prompt, the agent's core memory blocks, the task slice for the step the
message is about (its root-to-step path and dependencies, no sibling branches, no superseded values), the last
exchanges since the last edit (none right after one: they may hold the value it replaced), and the message.
So a correction ("not Rome, Lisbon") replaces the old value instead of competing with it in a long transcript,
and prompts stay short as the conversation grows. A one-shot
(`aios run chat "…"`, not interactive) is answered plainly with one call and keeps no tree.
"""

from __future__ import annotations

import re
from typing import Any

from aios.api import Agent, Capabilities, ChatMessage, Context, Manifest
from aios.errors import AiosError
from aios.hookspecs import hookimpl
from plugins._args import numbers_in
from plugins.goals import paths_in, request_named_paths
from plugins.worker import WorkerAgent, operation_of

__all__ = ["ChatAgent", "file_query", "tool_task"]

_SEARCH = re.compile(
    r"^\s*(?:please\s+|can you\s+|could you\s+)?(?:search|find|look\s+(?:for|through|in)|grep)\b(?P<rest>.*)$", re.I
)
_FILES = re.compile(r"\b(?:my|the|our)\s+(?:files?|notes?|documents?|docs|folders?|mounts?)\b", re.I)


def file_query(message: str) -> str | None:
    """What to search the user's files for, when the message asks for that ("search my files for notes about
    backups" -> "notes about backups"); None for anything else."""
    asked = _SEARCH.match(message.strip())
    if not asked or not _FILES.search(asked.group("rest")):
        return None
    rest = _FILES.sub(" ", asked.group("rest"))
    rest = re.sub(r"^\W*(?:in|through|for|about|on)\b", " ", rest.strip(), flags=re.I)
    query = " ".join(rest.split()).strip(" ?.!,")
    return query or None


_CLOCK = re.compile(r"\bwhat time\b|\btime (?:is it )?in\b|\b(?:today'?s )?date (?:is it )?in\b|\btime ?zone\b", re.I)
_MEMORY = re.compile(r"\b(?:in|from|search|check|look (?:in|through)) my memory\b", re.I)


def tool_task(message: str) -> bool:
    """The message is a task for tools, not for conversation: it names a file or folder, asks for arithmetic on
    numbers it gives ("what is 17 times 23"), asks the time somewhere, or asks to look something up in memory."""
    if paths_in(message) or _CLOCK.search(message) or _MEMORY.search(message):
        return True
    return operation_of(message) is not None and len(numbers_in(message)) >= 2


SYSTEM_PROMPT = "You are a helpful, concise assistant running inside aios, an agent operating system."


class ChatAgent(Agent):
    manifest = Manifest(
        name="chat",
        description="Talk with the local model; it keeps the conversation's steps in a task tree, searches "
        "your mounted files when asked and does tool tasks (a file, a sum, the time, a memory) step by step.",
        # Read-only files, only what the semantic file system has mounted; tools as the user's policy allows
        # (ask/deny per tool); the user's config may narrow all of it.
        capabilities=Capabilities(files_read=("~",), tools=("*",)),
        interactive=True,
    )
    #: Files listed for a search in the user's files.
    search_hits = 5
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
            done = await self._with_tools(ctx, first)
            if done is not None:
                return done
            found = await self._search_files(ctx, first)
            system = SYSTEM_PROMPT + (f"\n\n{found}" if found else "")
            return await self._reply(ctx, [{"role": "system", "content": system}, {"role": "user", "content": first}])
        # A conversation: its first message is the task tree's root and is answered through the same layout
        # as every later one (system prompt, core blocks, the task slice, the message); it needs no
        # classification, being the root.
        tree = await ctx.tasks.create(first.strip()[:80] or "conversation", first)
        recent: list[ChatMessage] = []
        message: str | None = first
        about, new_node = tree["root_id"], False
        while message is not None:
            if recent:
                about, new_node, kind = await self._file(ctx, tree, message)
                if kind == "update":
                    # An edit: earlier exchanges may carry the value it has just replaced ("not Rome, Lisbon");
                    # only exchanges since the last edit are kept after the slice.
                    recent = []
            answer = await self._with_tools(ctx, message) or ""
            if not answer:
                system = await self._system(ctx, tree["id"], about)
                found = await self._search_files(ctx, message)
                if found:
                    system += f"\n\n{found}"
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

    async def _with_tools(self, ctx: Context, message: str) -> str | None:
        """A message that is a task for tools is done as the worker does it (each call checked by the kernel, the
        steps shown, the answer read off the results); its answer, written, or None to answer by conversation
        (not a tool task, no tool fits, or tools are not allowed)."""
        if not tool_task(message) or file_query(message) is not None:
            return None
        try:
            await request_named_paths(ctx, message)
            answer = await WorkerAgent().solve(ctx, message)
        except AiosError as exc:
            ctx.log.info("tools could not do %r: %s", message, exc.one_line())
            return None
        if answer:
            await ctx.write(answer + "\n")
        return answer

    async def _search_files(self, ctx: Context, message: str) -> str:
        """For a message asking to search the user's files: the hits, written to the user and returned as the
        prompt block the reply is built on ("" for any other message)."""
        query = file_query(message)
        if query is None:
            return ""
        try:
            hits = await ctx.fs.search(query, k=self.search_hits)
        except AiosError as exc:
            note = f"I may not search your files: {exc.one_line()}"
            await ctx.write(note + "\n")
            return note
        if not hits:
            mounts = (await ctx.call("fs.mounts"))["mounts"]
            note = (
                f"Nothing in your mounted folders matches {query!r}."
                if mounts
                else "No folder you let me read is mounted: add one with `aios fs mount ~/notes` "
                "(or in the Files view)."
            )
            await ctx.write(note + "\n")
            return note
        lines = [f"- {h['path']}: {' '.join(str(h.get('chunk', '')).split())[:160]}" for h in hits]
        listing = f"Files matching {query!r}:\n" + "\n".join(lines)
        await ctx.write(listing + "\n\n")
        return listing + "\nAnswer from these files."

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

    async def _file(self, ctx: Context, tree: dict[str, Any], message: str) -> tuple[int, bool, str]:
        """File ``message`` into the tree: (the step the reply is about, whether it is a new step, the turn's kind:
        ``new_step``, ``update`` or ``question``)."""
        filed = await ctx.tasks.file(tree["id"], message)
        ctx.log.debug("turn filed as %s (by %s)", filed["kind"], filed["by"])
        return int(filed["about"]), bool(filed["new"]), str(filed["kind"])


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [ChatAgent]
