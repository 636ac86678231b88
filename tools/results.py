"""What a tool call returns: always a value, never an exception (failures are values dependents can see)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ErrorKind", "ProgressFn", "ToolResult", "content_text"]

#: Why a call produced no normal result: the tool said so (``tool``), its arguments failed the schema
#: (``invalid_args``), it went quiet past its timeout or hit the hard cap (``timeout``), it was cancelled
#: (``cancelled``), the server could not be reached or died (``unavailable``), it answered something that
#: is not MCP (``protocol``), access control refused (``denied``), a plan problem (``plan``: skipped node,
#: missing reference), or no such tool (``unknown_tool``).
ErrorKind = Literal[
    "tool", "invalid_args", "timeout", "cancelled", "unavailable", "protocol", "denied", "plan", "unknown_tool"
]

#: ``(progress, total, message)`` as the server reports it.
ProgressFn = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass
class ToolResult:
    text: str
    is_error: bool = False
    elapsed_s: float = 0.0
    structured: Any = None
    error_kind: ErrorKind | None = None
    #: Progress notifications received during the call.
    progress_events: int = 0
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def error(cls, kind: ErrorKind, text: str, elapsed_s: float = 0.0) -> ToolResult:
        return cls(text=text, is_error=True, elapsed_s=elapsed_s, error_kind=kind)

    def value(self) -> Any:
        """What ``${id}`` resolves to: structured content if any, else JSON-decoded text, else the text."""
        if self.structured is not None:
            if isinstance(self.structured, dict) and set(self.structured) == {"result"}:
                return self.structured["result"]
            return self.structured
        try:
            return json.loads(self.text)
        except (ValueError, TypeError):
            return self.text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "is_error": self.is_error, "elapsed_s": round(self.elapsed_s, 6)}
        if self.error_kind:
            out["error_kind"] = self.error_kind
        if self.structured is not None:
            out["structured"] = self.structured
        if self.attempts > 1:
            out["attempts"] = self.attempts
        return out


def content_text(blocks: list[Any]) -> str:
    """Flatten MCP content blocks into text (images and audio become a short placeholder)."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource link {block.uri}]")
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '')}]")
        else:
            parts.append(str(block))
    return "\n".join(parts)
