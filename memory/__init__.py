"""Persistent state: the SQLite store (and, in later layers, the semantic file system and memory)."""

from __future__ import annotations

from memory.store import TERMINAL_STATES, Store

__all__ = ["TERMINAL_STATES", "Store"]
