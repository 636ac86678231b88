"""Typed syscall requests. Everything an agent asks of the kernel is validated here before it is routed."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_STOP_STRINGS", "ChatMessageModel", "LLMChatRequest"]

MAX_STOP_STRINGS = 8


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessageModel(_Request):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class LLMChatRequest(_Request):
    """``llm.chat``: stream a reply to a conversation."""

    messages: list[ChatMessageModel] = Field(min_length=1, max_length=10_000)
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, lt=2**32)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_STRINGS)
    #: Generate exactly ``max_tokens`` (end-of-generation banned): for benchmarks and length tests.
    ignore_eos: bool = False
