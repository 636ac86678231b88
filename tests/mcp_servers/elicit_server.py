"""A stdio MCP server whose tool asks the user for a form (MCP elicitation), for tests.

Run: ``python -m tests.mcp_servers.elicit_server``. Tool ``register`` elicits a name and an age and says what
came back: ``registered NAME, AGE``, ``declined`` or ``cancelled``. Both protocol eras: on a legacy session it
sends ``elicitation/create`` (``ctx.elicit``); on a 2026-07-28 session (no server-initiated requests) it
returns ``InputRequiredResult`` and reads the answer from the client's retry.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, InputRequiredResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

server = MCPServer("elicit", instructions="A tool that asks the user for a form, for tests.")


class Person(BaseModel):
    name: str = Field(description="Your name")
    age: int = Field(description="Your age in years")


MESSAGE = "Who should be registered?"


def _said(action: str, person: Person | None) -> str:
    if action == "accept" and person is not None:
        return f"registered {person.name}, {person.age}"
    return "declined" if action == "decline" else "cancelled"


@server.tool()
async def register(ctx: Context) -> Any:
    """Ask the user for a name and an age, then register them."""
    responses = ctx.input_responses
    if responses and "person" in responses:
        answer = responses["person"]
        if not isinstance(answer, ElicitResult):
            answer = ElicitResult.model_validate(answer)
        person = Person.model_validate(answer.content) if answer.action == "accept" else None
        return _said(answer.action, person)
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:  # a legacy session: ask over the back-channel
        result = await ctx.elicit(MESSAGE, Person)
        return _said(result.action, getattr(result, "data", None))
    schema = Person.model_json_schema()
    return InputRequiredResult(
        input_requests={
            "person": ElicitRequest(params=ElicitRequestFormParams(message=MESSAGE, requested_schema=schema))
        }
    )


def main() -> None:
    server.run()


if __name__ == "__main__":
    main()
