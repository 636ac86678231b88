"""Small MCP servers used by the tests and the tools benchmark."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def slow_server_spec(*flags: str, **extra: Any) -> dict[str, Any]:
    """An ``mcpServers`` entry that runs tests/mcp_servers/slow_server.py over stdio."""
    return {
        "command": sys.executable,
        "args": ["-m", "tests.mcp_servers.slow_server", *flags],
        "cwd": str(ROOT),
        **extra,
    }


def elicit_server_spec(**extra: Any) -> dict[str, Any]:
    """An ``mcpServers`` entry that runs tests/mcp_servers/elicit_server.py (a tool that asks for a form)."""
    return {"command": sys.executable, "args": ["-m", "tests.mcp_servers.elicit_server"], "cwd": str(ROOT), **extra}
