"""The semantic file system: watched folders, hybrid search, versions, views, and LLM file commands."""

from __future__ import annotations

from memory.semfs.core import IndexStats, SemFS
from memory.semfs.db import Mount, NotIndexed, WriterBusy
from memory.semfs.search import Filters, Hit, parse_since

__all__ = ["Filters", "Hit", "IndexStats", "Mount", "NotIndexed", "SemFS", "WriterBusy", "parse_since"]
