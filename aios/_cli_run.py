"""`aios run`: start an in-process kernel, run one agent to completion, stream its output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from aios.config import load_config

__all__ = ["run_agent"]


def run_agent(
    agent: str,
    goal: str,
    *,
    priority: str | None,
    stream: Callable[[str], None] | None,
    status: Callable[[str], Any],
) -> dict[str, Any]:
    """Run ``agent`` on ``goal`` non-interactively; return its final process info. A running daemon
    (`aios serve`) runs it when there is one; otherwise an in-process kernel does."""
    import sys

    from aios.client import daemon_client

    prompt = sys.stdin.isatty()  # approvals are asked on the terminal; headless they time out
    daemon = daemon_client()
    if daemon is not None:
        daemon.close()
        return _run_on_daemon(agent, goal, priority=priority, stream=stream, prompt=prompt)
    from aios.plugin_manager import PluginManager
    from kernel.kernel import load_runtime, open_kernel

    config = load_config()
    plugins = PluginManager()
    plugins.agent(agent)  # fail fast, before loading the model, on an unknown name
    with status(f"loading model {config.llm.model or 'default'}…"):
        backend = load_runtime(config)

    async def main() -> dict[str, Any]:
        async with open_kernel(config, runtime=backend, plugins=plugins) as kernel:
            return await _follow(kernel, kernel.subscribe(), agent, goal, priority, stream, prompt)

    return anyio.run(main)


def _run_on_daemon(
    agent: str, goal: str, *, priority: str | None, stream: Callable[[str], None] | None, prompt: bool
) -> dict[str, Any]:
    from aios.client import SocketClient

    async def main() -> dict[str, Any]:
        async with SocketClient() as kernel:
            return await _follow(kernel, await kernel.open_events(), agent, goal, priority, stream, prompt)

    return anyio.run(main)


async def _follow(
    kernel: Any,
    events: Any,
    agent: str,
    goal: str,
    priority: str | None,
    stream: Callable[[str], None] | None,
    prompt: bool,
) -> dict[str, Any]:
    """Spawn ``agent`` on ``kernel`` (in-process or a daemon's client), stream its output from ``events``,
    answer approvals on the terminal if ``prompt``, and return its final info."""
    from kernel.events import OutputWritten, ProcessExited

    async with anyio.create_task_group() as tg:
        if prompt:
            from aios.cli_access import prompt_approvals

            tg.start_soon(prompt_approvals, kernel)
        pid = await kernel.spawn(agent, goal, interactive=False, priority=priority)
        with events:
            async for event in events:
                if event.pid != pid:
                    continue
                if isinstance(event, OutputWritten) and stream is not None:
                    stream(event.text)
                elif isinstance(event, ProcessExited):
                    break
        info = await kernel.wait(pid)
        if stream is not None:
            stream("\n")
        tg.cancel_scope.cancel()
    return info
