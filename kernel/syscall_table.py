"""Imports every module that registers table syscalls, so ``SYSCALLS`` is complete once the kernel starts.

Each domain adds its module here (one line each); a module registers its calls with ``@syscall`` on import.
"""

from __future__ import annotations

import importlib

__all__ = ["SYSCALL_MODULES", "load_syscalls"]

SYSCALL_MODULES: tuple[str, ...] = (
    "kernel.sys_proc",
    # -- fs.* (semantic file system) --
    # -- mem.* / task.* (agent memory, task tree) --
    # -- tool.* (MCP host) --
)


def load_syscalls() -> None:
    for name in SYSCALL_MODULES:
        importlib.import_module(name)
