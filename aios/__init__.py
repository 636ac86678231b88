"""aios: an agent operating system shell for the terminal.

The public plugin API is re-exported lazily so that ``import aios`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "LLM",
    "Agent",
    "Capabilities",
    "ChatMessage",
    "Context",
    "Manifest",
    "PluginTool",
    "__version__",
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
    "tool": "aios.api",
    "hookimpl": "aios.hookspecs",
}

if TYPE_CHECKING:
    from aios.api import LLM, Agent, Capabilities, ChatMessage, Context, Manifest, PluginTool, tool
    from aios.hookspecs import hookimpl


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aios' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
