"""Run one agent on a real kernel with the deterministic fake backend: what plugin authors test with.

``run_agent(MyAgent, "goal")`` boots a kernel in the current ``AIOS_HOME`` (tests point it at a tmp dir) with
the agent registered as a plugin, the scripted ``FakeBackend`` as the model (no grammars: code that needs
``ctx.llm.json`` is tested against the bundled model, marked ``model``), sends ``inputs`` as user messages
to an interactive agent, and returns what happened: its final state, result, error and the text it wrote.
Every syscall goes through the same access control as in production, so a missing capability fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from aios.api import Agent, ChatMessage
from aios.config import Config

__all__ = ["AgentRun", "run_agent"]


@dataclass
class AgentRun:
    state: str
    result: str | None
    error: str | None
    #: The text of each turn the agent wrote (one entry per ``end_turn``, plus what was left at exit).
    turns: list[str] = field(default_factory=list)
    #: The messages the model was sent, one list per LLM call.
    prompts: list[list[ChatMessage]] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.turns)


async def run_agent(
    agent: type[Agent],
    goal: str = "",
    *,
    inputs: Sequence[str] = (),
    reply: Callable[[Sequence[ChatMessage]], str] | None = None,
    plugins: Mapping[str, object] | None = None,
    config: Config | None = None,
    timeout_s: float = 30.0,
) -> AgentRun:
    """Run ``agent`` to its end; ``reply(messages)`` scripts the model (default: echo the last message);
    ``plugins`` registers more plugins by name (the name their entry point gives them), e.g. the one whose
    ``register_tools`` provides the tools the agent calls."""
    from aios.hookspecs import hookimpl
    from aios.paths import db_path
    from aios.plugin_manager import PluginManager
    from kernel.backends.fake import FakeBackend, echo_script
    from kernel.kernel import open_kernel
    from memory.store import Store

    prompts: list[list[ChatMessage]] = []
    script = reply or echo_script

    def scripted(messages: Sequence[ChatMessage]) -> str:
        if not prompts or prompts[-1] != list(messages):
            prompts.append(list(messages))
        return script(messages)

    class _Plugin:
        @hookimpl
        def register_agents(self) -> list[type[Agent]]:
            return [agent]

    manager = PluginManager(load_entry_points=False, plugins_dir=Path("/nonexistent"))
    manager.register(_Plugin(), name=f"test:{agent.manifest.name}")
    for name, extra in (plugins or {}).items():  # named as their entry point would be (tools: NAME.tool)
        manager.register(extra, name=name)
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    store = Store.open(path)
    try:
        with anyio.fail_after(timeout_s):
            async with open_kernel(
                config or Config(), runtime=FakeBackend(script=scripted), store=store, plugins=manager
            ) as kernel:
                pid = await kernel.spawn(agent.manifest.name, goal, interactive=bool(inputs) or None)
                for text in inputs:
                    await kernel.send(pid, text)
                if inputs:
                    await kernel.close_input(pid)
                info = await kernel.wait(pid)
        turns = [str(m["content"]) for m in store.messages(pid) if m["role"] == "assistant"]
    finally:
        store.close()
    return AgentRun(info["state"], info.get("result"), info.get("error"), turns, prompts)
