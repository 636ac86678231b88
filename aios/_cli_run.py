"""`aios run`: one agent run to its end as a kernel process (the running daemon's, else a kernel started for
the command: ``kernel.launch.run_agent``), its output streamed, approvals asked on the terminal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["run_agent"]


def run_agent(
    agent: str,
    goal: str,
    *,
    priority: str | None,
    stream: Callable[[str], None] | None,
    status: Callable[[str], Any],
    unconfined: bool = False,
    allow_read: tuple[str, ...] = (),
    allow_write: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run ``agent`` on ``goal`` non-interactively; return its final process info. ``allow_read`` /
    ``allow_write``: folders granted to this run (`--allow-read` / `--allow`)."""
    import sys

    from kernel.launch import run_agent as launch

    approver = None
    if sys.stdin.isatty():  # approvals are asked on the terminal; headless they time out
        from aios.cli_access import prompt_approvals

        approver = prompt_approvals
    return launch(
        agent,
        goal,
        priority=priority,
        stream=stream,
        approver=approver,
        loading=status,
        unconfined=unconfined,
        grants=(allow_read, allow_write),
    )
