"""aios: an agent operating system shell for the terminal.

The public plugin API is re-exported lazily so that ``import aios`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "LLM",
    "Agent",
    "AiosError",
    "BudgetExceeded",
    "Capabilities",
    "ChatMessage",
    "Context",
    "Files",
    "Manifest",
    "Memory",
    "PermissionDenied",
    "PluginTool",
    "Tasks",
    "Tools",
    "__version__",
    "as_context",
    "hookimpl",
    "tool",
]

__version__ = "0.1.0"

_LAZY = {
    "Agent": "aios.api",
    "Capabilities": "aios.api",
    "ChatMessage": "aios.api",
    "Context": "aios.api",
    "LLM": "aios.api",
    "Manifest": "aios.api",
    "PluginTool": "aios.api",
    "Files": "aios.api",
    "Memory": "aios.api",
    "Tasks": "aios.api",
    "Tools": "aios.api",
    "as_context": "aios.api",
    "tool": "aios.api",
    "hookimpl": "aios.hookspecs",
    "AiosError": "aios.errors",
    "BudgetExceeded": "aios.errors",
    "PermissionDenied": "aios.errors",
}

if TYPE_CHECKING:
    from aios.api import (
        LLM,
        Agent,
        Capabilities,
        ChatMessage,
        Context,
        Files,
        Manifest,
        Memory,
        PluginTool,
        Tasks,
        Tools,
        as_context,
        tool,
    )
    from aios.errors import AiosError, BudgetExceeded, PermissionDenied
    from aios.hookspecs import hookimpl


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aios' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
