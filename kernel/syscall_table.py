"""Imports every module that registers table syscalls, so ``SYSCALLS`` is complete once the kernel starts.

Each domain adds its module here (one line each); a module registers its calls with ``@syscall`` on import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

__all__ = ["SERVICES", "SYSCALL_MODULES", "load_services", "load_syscalls"]

SYSCALL_MODULES: tuple[str, ...] = (
    "kernel.sys_proc",
    "kernel.sys_fs",
    "kernel.sys_task",
    "kernel.sys_mem",
    "kernel.sys_tool",
    "kernel.sys_request",
)


def load_syscalls() -> None:
    for name in SYSCALL_MODULES:
        importlib.import_module(name)


#: Kernel services started at boot, in order, and stopped in reverse at shutdown: ``"module:function"``
#: where ``function(kernel)`` returns an async context manager yielding the service object, stored as
#: ``kernel.services[name]``. A service that fails to start is logged and left out; the kernel still boots.
SERVICES: tuple[tuple[str, str], ...] = (
    ("semfs", "kernel.svc_semfs:open_service"),
    ("memory", "kernel.svc_memory:open_service"),
    ("mcp", "kernel.svc_tools:open_service"),
)


ServiceFactory = Callable[[Any], AbstractAsyncContextManager[Any]]


def load_services() -> list[tuple[str, ServiceFactory]]:
    """The service factories, imported."""
    found: list[tuple[str, ServiceFactory]] = []
    for name, dotted in SERVICES:
        module, _, attr = dotted.partition(":")
        found.append((name, getattr(importlib.import_module(module), attr)))
    return found
