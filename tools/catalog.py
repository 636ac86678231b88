"""The tool catalog: every server's tools, prompts and resources, namespaced ``server.tool``.

Per-agent views filter by capabilities (``tools`` / ``tools_ask`` globs, minus ``tools_deny``). ``search``
ranks tools for a query by keyword overlap and, when the embedding model is available
(``memory.embeddings.embed``), by cosine similarity of descriptions, fused by reciprocal rank; so a planner
can pick among hundreds of tools without loading every schema.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Catalog", "PromptEntry", "ResourceEntry", "SideEffect", "ToolEntry", "visible_to"]

log = logging.getLogger(__name__)

SideEffect = Literal["read_only", "write", "destructive"]
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"the", "a", "an", "of", "to", "and", "or", "in", "for", "on", "with", "is", "it", "this", "that", "by", "from"}


def _tokens(text: str) -> list[str]:
    words = _WORD.findall(re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower().replace("_", " "))
    out = []
    for w in words:
        if w in _STOP:
            continue
        out.append(w[:-1] if len(w) > 4 and w.endswith("s") else w)
    return out


@dataclass(frozen=True)
class ToolEntry:
    name: str
    server: str
    tool: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False
    destructive: bool = True
    idempotent: bool = False
    open_world: bool = True
    egress: bool = False

    @classmethod
    def from_mcp(cls, server: str, tool: Any, *, egress: bool = False) -> ToolEntry:
        ann = tool.annotations
        read_only = bool(ann and ann.read_only_hint)
        # MCP's defaults: not read-only, destructive, not idempotent, open world.
        destructive = not read_only and (ann is None or ann.destructive_hint is not False)
        return cls(
            name=f"{server}.{tool.name}",
            server=server,
            tool=tool.name,
            description=(tool.description or tool.title or "").strip(),
            input_schema=dict(tool.input_schema or {"type": "object"}),
            read_only=read_only,
            destructive=destructive,
            idempotent=bool(ann and ann.idempotent_hint) or read_only,
            open_world=ann is None or ann.open_world_hint is not False,
            egress=egress,
        )

    @property
    def side_effect(self) -> SideEffect:
        return "read_only" if self.read_only else ("destructive" if self.destructive else "write")

    @property
    def retry_safe(self) -> bool:
        return self.read_only or self.idempotent

    def signature(self) -> str:
        props = self.input_schema.get("properties", {}) or {}
        required = set(self.input_schema.get("required", []) or [])
        args = ", ".join(f"{k}{'' if k in required else '?'}: {v.get('type', 'any')}" for k, v in props.items())
        return f"{self.name}({args})"

    def to_json(self, *, schema: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "server": self.server,
            "description": self.description,
            "side_effect": self.side_effect,
            "signature": self.signature(),
        }
        if self.egress:
            out["egress"] = True
        if schema:
            out["input_schema"] = self.input_schema
        return out

    def search_text(self) -> str:
        props = " ".join((self.input_schema.get("properties") or {}).keys())
        return f"{self.server} {self.tool} {self.description} {props}"


@dataclass(frozen=True)
class PromptEntry:
    name: str
    server: str
    description: str = ""
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResourceEntry:
    uri: str
    server: str
    name: str = ""
    description: str = ""
    mime_type: str | None = None


def _match(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def visible_to(caps: Any, name: str) -> bool:
    """Whether an agent with capabilities ``caps`` may see (and so ask to call) tool ``name``."""
    if caps is None:
        return True
    if _match(caps.tools_deny, name):
        return False
    return _match((*caps.tools, *caps.tools_ask), name)


class Catalog:
    def __init__(self) -> None:
        self.tools: dict[str, ToolEntry] = {}
        self.prompts: list[PromptEntry] = []
        self.resources: list[ResourceEntry] = []
        self._vectors: dict[str, Any] = {}
        self._embed_failed = False

    def replace_server(
        self, server: str, tools: list[ToolEntry], prompts: list[PromptEntry], resources: list[ResourceEntry]
    ) -> None:
        self.tools = {k: v for k, v in self.tools.items() if v.server != server}
        for entry in tools:
            self.tools[entry.name] = entry
        self.prompts = [p for p in self.prompts if p.server != server] + prompts
        self.resources = [r for r in self.resources if r.server != server] + resources

    def drop_server(self, server: str) -> None:
        self.replace_server(server, [], [], [])

    def get(self, name: str) -> ToolEntry | None:
        return self.tools.get(name)

    def view(self, caps: Any = None) -> list[ToolEntry]:
        return [t for name, t in sorted(self.tools.items()) if visible_to(caps, name)]

    # -- search -----------------------------------------------------------------------------------

    def keyword_scores(self, query: str, entries: list[ToolEntry]) -> dict[str, float]:
        q = _tokens(query)
        if not q or not entries:
            return {}
        docs = {e.name: _tokens(e.search_text()) for e in entries}
        df: Counter[str] = Counter()
        for words in docs.values():
            df.update(set(words))
        n = len(docs)
        scores: dict[str, float] = {}
        for name, words in docs.items():
            counts = Counter(words)
            score = 0.0
            for term in q:
                tf = counts.get(term, 0) + 0.5 * sum(
                    1
                    for w in counts
                    if w != term and (w.startswith(term) or term.startswith(w)) and min(len(w), len(term)) >= 3
                )
                if tf:
                    idf = math.log(1 + (n - df.get(term, 0) + 0.5) / (df.get(term, 0) + 0.5))
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(words) / 12))
            if score > 0:
                scores[name] = score
        return scores

    def _semantic_scores(self, query: str, entries: list[ToolEntry]) -> dict[str, float]:
        if self._embed_failed or not entries:
            return {}
        try:
            from memory.embeddings import embed
        except Exception as exc:  # the embedding model is optional for search
            log.info("catalog search is keyword-only: %s", exc)
            self._embed_failed = True
            return {}
        try:
            missing = [e for e in entries if e.name not in self._vectors]
            if missing:
                vectors = embed([f"{e.tool.replace('_', ' ')}: {e.description}"[:1000] for e in missing])
                for entry, vector in zip(missing, vectors, strict=True):
                    self._vectors[entry.name] = vector
            qv = embed([query])[0]
        except Exception as exc:
            log.warning("catalog embeddings unavailable, keyword-only search: %s", exc)
            self._embed_failed = True
            return {}
        return {e.name: float(self._vectors[e.name] @ qv) for e in entries}

    def search(
        self, query: str, *, caps: Any = None, limit: int = 8, semantic: bool = True
    ) -> list[tuple[ToolEntry, float]]:
        """The best ``limit`` tools for ``query`` among those ``caps`` can see, best first, with a score."""
        entries = self.view(caps)
        keyword = self.keyword_scores(query, entries)
        vector = self._semantic_scores(query, entries) if semantic else {}
        fused: dict[str, float] = {}
        for scores in (keyword, vector):
            ranked = sorted(scores.items(), key=lambda kv: -kv[1])
            for rank, (name, _) in enumerate(ranked):
                fused[name] = fused.get(name, 0.0) + 1.0 / (20 + rank)
        ordered = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [(self.tools[name], round(score, 5)) for name, score in ordered]
