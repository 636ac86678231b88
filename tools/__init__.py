"""The MCP tool host: server owners, catalog, DAG executor and planner, the clock server, HTTP bearer auth.

A library: it never imports ``kernel``. The kernel's tool service, the servers that expose its syscalls as tools
and ``aios mcp serve`` are the kernel's (``kernel.svc_tools``, ``kernel.mcp_export``).

Public names are imported lazily (``from tools import McpHost``), so ``import tools`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Catalog", "Executor", "McpHost", "Plan", "Planner", "ServerConfig", "ToolEntry", "ToolResult", "load_plan"]

_WHERE = {
    "Catalog": "tools.catalog",
    "ToolEntry": "tools.catalog",
    "Executor": "tools.executor",
    "McpHost": "tools.host",
    "Plan": "tools.plan",
    "load_plan": "tools.plan",
    "Planner": "tools.planner",
    "ServerConfig": "tools.config",
    "ToolResult": "tools.results",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tools' has no attribute {name!r}")
