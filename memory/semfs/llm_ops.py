"""File operations that use the LLM: summaries, version comparisons, merges, and natural-language plans.

Summaries and comparisons are cached by the hash of what was summarised (and the model), so asking twice
costs nothing. ``plan`` turns a request into a typed list of fs operations under a JSON-schema grammar;
``run_plan`` executes it, and refuses destructive steps (write, delete, move, rollback) unless confirmed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from pydantic import BaseModel, Field, ValidationError

from aios.errors import UsageError
from memory.semfs.core import SemFS
from memory.semfs.search import Filters
from memory.semfs.views import concat_files, expand, query_view

__all__ = ["DESTRUCTIVE", "LLM", "Plan", "PlanStep", "compare", "merge", "plan", "run_plan", "summarize"]

log = logging.getLogger(__name__)

DESTRUCTIVE = frozenset({"write", "delete", "move", "rollback"})
MAX_INPUT_CHARS = 6000


class LLM(Protocol):
    """A completion function: chat messages in, text out, optionally constrained to a JSON schema."""

    model: str

    async def __call__(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None, max_tokens: int = 256
    ) -> str: ...


class PlanStep(BaseModel):
    op: str = Field(pattern="^(search|ls|cat|summarize|history|diff|rollback|write|delete|move|join|group)$")
    path: str = Field("", max_length=300)
    query: str = Field("", max_length=200)
    dest: str = Field("", max_length=300)
    text: str = Field("", max_length=2000)
    steps: int = Field(1, ge=1, le=100)


class Plan(BaseModel):
    steps: list[PlanStep] = Field(min_length=1, max_length=6)

    @property
    def destructive(self) -> bool:
        return any(s.op in DESTRUCTIVE for s in self.steps)


PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "steps": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "op": {
                        "type": "string",
                        "enum": sorted(
                            [
                                "search",
                                "ls",
                                "cat",
                                "summarize",
                                "history",
                                "diff",
                                "rollback",
                                "write",
                                "delete",
                                "move",
                                "join",
                                "group",
                            ]
                        ),
                    },
                    "path": {"type": "string", "maxLength": 120},
                    "query": {"type": "string", "maxLength": 80},
                    "dest": {"type": "string", "maxLength": 120},
                    "steps": {"type": "integer"},
                },
                "required": ["op", "path", "query", "dest", "steps"],
            },
        }
    },
    "required": ["steps"],
}

_PLAN_PROMPT = """You turn a request about files into a JSON plan of file operations.
Operations: search (query), ls (path), cat (path), summarize (path), history (path), diff (path),
rollback (path, steps back), write (path), delete (path), move (path to dest),
join (path: comma-separated files, dest: new file), group (query; dest is the view name).
Unused fields are "" (steps 1).
Example: "find my notes about taxes" -> {"steps":[{"op":"search","path":"","query":"taxes","dest":"","steps":1}]}
Example: "undo the last change to /home/u/todo.md" ->
{"steps":[{"op":"rollback","path":"/home/u/todo.md","query":"","dest":"","steps":1}]}
Mounted folders: {mounts}"""


def _key(kind: str, model: str, *parts: str) -> str:
    return hashlib.sha256("\x00".join((kind, model, *parts)).encode()).hexdigest()


def _cached(fs: SemFS, key: str) -> str | None:
    row = fs.db.one("SELECT text FROM semfs_llm_cache WHERE key = ?", (key,))
    return row["text"] if row else None


def _store(fs: SemFS, key: str, kind: str, text: str) -> None:
    with fs.db.tx() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO semfs_llm_cache (key, kind, text, created_at) VALUES (?, ?, ?, ?)",
            (key, kind, text, time.time()),
        )


async def summarize(fs: SemFS, llm: LLM, target: str) -> dict[str, Any]:
    """A short summary of a file or of every file in ``@VIEW``, cached by content hash."""
    sources = await anyio.to_thread.run_sync(expand, fs, [target])
    if not sources:
        raise UsageError(f"{target} holds no files")
    texts = [(s, (await anyio.to_thread.run_sync(fs.cat, s)).decode("utf-8", errors="replace")) for s in sources]
    digest = hashlib.sha256("\x00".join(t for _, t in texts).encode()).hexdigest()
    key = _key("summary", llm.model, digest)
    cached = _cached(fs, key)
    if cached is not None:
        return {"target": target, "summary": cached, "cached": True, "files": len(texts)}
    per_file = MAX_INPUT_CHARS // len(texts)
    body = "\n\n".join(f"File {path}:\n{text[:per_file]}" for path, text in texts)
    summary = (
        await llm(
            [
                {
                    "role": "system",
                    "content": "Summarise the files below in 2-4 plain sentences. Say what they are about.",
                },
                {"role": "user", "content": body},
            ],
            max_tokens=200,
        )
    ).strip()
    _store(fs, key, "summary", summary)
    return {"target": target, "summary": summary, "cached": False, "files": len(texts)}


async def compare(fs: SemFS, llm: LLM, path: str, a: int = -1, b: int = 0) -> dict[str, Any]:
    """What changed between two versions, in words (cached by the two content hashes)."""
    diff = await anyio.to_thread.run_sync(fs.diff, path, a, b)
    if not diff:
        return {"path": path, "comparison": "The two versions are identical.", "cached": False, "diff": ""}
    key = _key("compare", llm.model, hashlib.sha256(diff.encode()).hexdigest())
    cached = _cached(fs, key)
    if cached is not None:
        return {"path": path, "comparison": cached, "cached": True, "diff": diff}
    text = (
        await llm(
            [
                {
                    "role": "system",
                    "content": "Explain in 1-3 sentences what changed in this unified diff "
                    "(lines with - were removed, + were added).",
                },
                {"role": "user", "content": diff[:MAX_INPUT_CHARS]},
            ],
            max_tokens=160,
        )
    ).strip()
    _store(fs, key, "compare", text)
    return {"path": path, "comparison": text, "cached": False, "diff": diff}


async def merge(fs: SemFS, llm: LLM, sources: list[str]) -> str:
    """One document merged by the LLM from the sources (their concatenation is its input)."""
    joined = await anyio.to_thread.run_sync(concat_files, fs, sources)
    merged = await llm(
        [
            {
                "role": "system",
                "content": "Merge these documents into one well-organised Markdown document. "
                "Keep every fact; remove repetition.",
            },
            {"role": "user", "content": joined[:MAX_INPUT_CHARS]},
        ],
        max_tokens=800,
    )
    return merged.strip() + "\n"


_PATHLIKE = re.compile(r"(?:~|\.{0,2}/)?[\w.@~-]+(?:/[\w.@-]+)+/?|[\w-]+\.[A-Za-z0-9]{1,5}\b")
_FILLER = frozenset(
    "a an the my our me i please find search show look for about all any some of to in on at with and or is are "
    "that this these those files file notes note documents docs me list give tell what which where".split()
)


def _mentioned_paths(request: str) -> list[str]:
    """Paths the request names (absolute after ``~`` expansion), in order: the only paths a plan may use."""
    found: list[str] = []
    for token in _PATHLIKE.findall(request):
        path = os.path.abspath(os.path.expanduser(token.rstrip(".,;:")))
        if path not in found:
            found.append(path)
    return found


#: Words that name an operation. When a request uses some, the grammar offers only those operations (a small
#: model picks poorly among twelve; the kernel narrows the choice, as ARCHITECTURE.md §3 asks).
_VERBS: dict[str, tuple[str, ...]] = {
    "search": ("find", "search", "where", "look", "locate", "about"),
    "ls": ("list", "ls"),
    "cat": ("show", "print", "cat", "read", "open", "display"),
    "summarize": ("summar", "gist", "overview", "tldr"),
    "history": ("history", "versions", "revisions"),
    "diff": ("diff", "changed", "difference"),
    "rollback": ("undo", "revert", "rollback", "roll back", "restore", "go back"),
    "write": ("write", "save", "create"),
    "delete": ("delete", "remove", "erase"),
    "move": ("move", "rename"),
    "join": ("join", "combine", "merge", "concatenate"),
    "group": ("group", "cluster", "collect"),
}
#: The fields each operation uses; the others are blanked so a plan shows (and runs) only what matters.
_FIELDS = {
    "search": {"query"},
    "group": {"query", "dest"},
    "rollback": {"path", "steps"},
    "move": {"path", "dest"},
    "join": {"path", "dest"},
    "write": {"path", "text"},
}


def _ops_for(request: str) -> list[str]:
    low = request.lower()
    named = [op for op, words in _VERBS.items() if any(re.search(rf"\b{re.escape(w)}", low) for w in words)]
    if "history" in named and "rollback" in named and not re.search(r"\b(undo|revert|roll ?back|restore)", low):
        named.remove("rollback")
    return named or sorted(_VERBS)


def _plan_schema(paths: list[str], ops: list[str] | None = None) -> dict[str, Any]:
    """PLAN_SCHEMA narrowed to this request: only the operations it names, and ``path``/``dest`` only paths it
    names."""
    schema = json.loads(json.dumps(PLAN_SCHEMA))
    item = schema["properties"]["steps"]["items"]["properties"]
    if ops:
        item["op"] = {"type": "string", "enum": ops}
    choices = ["", *paths]
    item["path"] = {"type": "string", "enum": choices}
    item["dest"] = {"type": "string", "enum": choices}
    item["steps"] = {"type": "integer", "enum": list(range(1, 10))}
    return schema


def _fix_query(query: str, request: str) -> str:
    """A small model likes to copy example words: keep its query only if the request says those words."""
    said = set(re.findall(r"\w+", request.lower()))
    words = re.findall(r"\w+", query.lower())
    if words and all(w in said for w in words):
        return query
    return " ".join(w for w in re.findall(r"[\w.-]+", request) if w.lower() not in _FILLER) or request


async def plan(fs: SemFS, llm: LLM, request: str) -> Plan:
    """The LLM's typed plan for ``request``: grammar-constrained, paths narrowed to those the request names,
    queries checked against the request's words, then validated."""
    if not request.strip():
        raise UsageError('say what to do, e.g. aios fs ask "find my notes about taxes"')
    mounts = ", ".join(f"{m.name}={m.path}" for m in fs.db.mounts()) or "none"
    paths = _mentioned_paths(request)
    raw = await llm(
        [
            {"role": "system", "content": _PLAN_PROMPT.replace("{mounts}", mounts)},
            {"role": "user", "content": request[:1000]},
        ],
        schema=_plan_schema(paths, _ops_for(request)),
        max_tokens=300,
    )
    try:
        the_plan = Plan.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise UsageError(
            f"the model did not produce a usable plan ({str(exc).splitlines()[0]})",
            "rephrase the request, or use the fs commands directly",
        ) from None
    steps = []
    for step in the_plan.steps:
        used = _FIELDS.get(step.op, {"path"})
        step = step.model_copy(
            update={f: ("" if f != "steps" else 1) for f in ("path", "query", "dest", "text", "steps") if f not in used}
        )
        if step.op in ("search", "group"):
            step = step.model_copy(update={"query": _fix_query(step.query, request)})
        if step.op not in ("search", "group", "ls") and not step.path:
            continue  # an operation on a file the request never named cannot run
        if step not in steps:  # small models repeat themselves
            steps.append(step)
    if not steps:
        raise UsageError("the plan named no file the request mentions", "name the file by its path")
    return Plan(steps=steps)


Confirm = Callable[[PlanStep], Awaitable[bool]]


async def run_plan(
    fs: SemFS, llm: LLM | None, the_plan: Plan, *, confirm: Confirm | None = None
) -> list[dict[str, Any]]:
    """Run each step; a destructive step runs only if ``confirm(step)`` says yes. Failures become results."""
    results: list[dict[str, Any]] = []
    for step in the_plan.steps:
        if step.op in DESTRUCTIVE and (confirm is None or not await confirm(step)):
            results.append({"op": step.op, "path": step.path, "status": "skipped", "detail": "not confirmed"})
            continue
        try:
            detail = await _run_step(fs, llm, step)
            results.append({"op": step.op, "path": step.path, "status": "ok", "detail": detail})
        except (UsageError, OSError) as exc:
            message = exc.one_line() if isinstance(exc, UsageError) else str(exc)
            results.append({"op": step.op, "path": step.path, "status": "error", "detail": message})
    return results


async def _run_step(fs: SemFS, llm: LLM | None, step: PlanStep) -> Any:
    def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Awaitable[Any]:
        return anyio.to_thread.run_sync(lambda: fn(*args, **kw))

    op = step.op
    if op == "search":
        hits = await call(fs.search, step.query or step.path, k=5, filters=Filters())
        return [{"path": h.path, "score": h.score, "chunk": h.chunk[:200]} for h in hits]
    if op == "ls":
        return [r["path"] for r in await call(fs.ls, step.path or None)]
    if op == "cat":
        return (await call(fs.cat, step.path)).decode("utf-8", errors="replace")[:4000]
    if op == "history":
        return await call(fs.history, step.path)
    if op == "diff":
        return await call(fs.diff, step.path)
    if op == "rollback":
        return await call(fs.rollback, step.path, steps=step.steps)
    if op == "delete":
        return (await call(fs.delete, step.path)).outcome
    if op == "write":
        return (await call(fs.write, step.path, step.text.encode())).outcome
    if op == "move":
        data = await call(fs.cat, step.path)
        await call(fs.write, step.dest, data, source="move")
        await call(fs.delete, step.path)
        return {"moved": step.path, "to": step.dest}
    if op == "group":
        return await call(query_view, fs, step.query, step.dest or "results")
    if op == "join":
        sources = [p.strip() for p in step.path.split(",") if p.strip()]
        text = await call(concat_files, fs, sources)
        return (await call(fs.write, step.dest, text.encode())).outcome
    if op == "summarize":
        if llm is None:
            raise UsageError("summarize needs the LLM")
        return (await summarize(fs, llm, step.path))["summary"]
    raise UsageError(f"unknown operation {op}")
