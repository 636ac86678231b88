"""The stdio MCP tool server of bench/agentic: tools that take a given time and return a given amount of text.

Run: ``python -m bench._agentic_tools``. The workload draws each call's duration and result size (seeded)
and passes them as arguments, so every system under test sees exactly the same tool behaviour.
"""

from __future__ import annotations

import random

import anyio
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

server = MCPServer("agentic", instructions="Slow read-only tools for the agentic benchmark.")

WORDS = (
    "river stone market ledger harbor signal copper meadow engine lantern orchard canal quarry beacon "
    "granite valley timber furnace compass archive cistern pylon glacier vineyard foundry ferry bastion "
    "delta mill terrace reservoir observatory depot causeway kiln aqueduct spire wharf arsenal lighthouse"
).split()


def _text(topic: str, words: int, seed: int) -> str:
    rng = random.Random(f"{topic}:{seed}")
    body = " ".join(rng.choice(WORDS) for _ in range(max(1, words)))
    return f"Results for {topic}: {body}."


@server.tool(annotations=READ_ONLY)
async def search(query: str, seconds: float, words: int, seed: int = 0) -> str:
    """Search the archive for ``query``; returns matching records."""
    await anyio.sleep(seconds)
    return _text(query, words, seed)


@server.tool(annotations=READ_ONLY)
async def fetch(record: str, seconds: float, words: int, seed: int = 0) -> str:
    """Fetch one record by name; returns its text."""
    await anyio.sleep(seconds)
    return _text(record, words, seed)


if __name__ == "__main__":
    server.run()
