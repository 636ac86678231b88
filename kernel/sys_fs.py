"""``fs.*`` syscalls: the semantic file system under access control.

Every call names each path it touches as an ``Access(kind="file", ...)`` (write for writes, deletes and
rollbacks), so an agent sees only the subtrees its capabilities grant. The work runs in the ``semfs`` kernel
service (``memory.semfs``) in a worker thread; LLM-backed calls (summarize, compare, ask, merged joins) go to
the shared engine as their own sequence, accounted to the caller.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from aios.errors import ModelError, UsageError
from kernel.access import file_grants
from kernel.blocking import run_blocking
from kernel.syscalls import Access, Request, syscall

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process
    from memory.semfs import SemFS
    from memory.semfs.scoped import ScopedFS

__all__ = ["FsFacade", "KernelLLM", "semfs_of"]

Path_ = Field(min_length=1, max_length=4096)


def semfs_of(kernel: Kernel) -> SemFS:
    fs = kernel.services.get("semfs")
    if fs is None:
        raise UsageError("the semantic file system is not running in this kernel", "see the kernel log")
    return fs


class KernelLLM:
    """``memory.semfs.llm_ops.LLM`` for a process: each call is its ``llm.chat`` (model grant and token budget
    checked, accounted to it, audited), grammar-constrained when given a schema."""

    def __init__(self, kernel: Kernel, proc: Process) -> None:
        self.kernel = kernel
        self.proc = proc
        self.model = kernel.model_name

    async def __call__(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any] | None = None, max_tokens: int = 256
    ) -> str:
        from kernel.syscalls import LLMChatRequest

        request = LLMChatRequest.model_validate(
            {
                "messages": messages,
                "max_tokens": max_tokens,
                "temperature": 0.0 if schema else None,
                "json_schema": schema,
            }
        )
        try:
            return "".join([piece async for piece in self.kernel.llm_chat(self.proc, request)])
        except UsageError as exc:
            if schema and "grammar" in exc.message:
                raise ModelError(
                    f"model {self.model} cannot follow a grammar, which this command needs",
                    "use the bundled llama model or an OpenAI-compatible server",
                ) from None
            raise


class FsFacade:
    """``ctx.fs``: typed shortcuts over the ``fs.*`` syscalls (each is one checked, audited ``ctx.call``)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    async def search(self, query: str, *, k: int = 10, **filters: Any) -> list[dict[str, Any]]:
        """Best chunk per file, best first (filters: mount, glob, type, since, view, mode)."""
        return list((await self._ctx.call("fs.search", query=query, k=k, **filters))["results"])

    async def read(self, path: str, version: int | None = None) -> str:
        return str((await self._ctx.call("fs.cat", path=path, version=version))["text"])

    async def write(self, path: str, text: str) -> str:
        return str((await self._ctx.call("fs.write", path=path, text=text))["outcome"])

    async def history(self, path: str) -> list[dict[str, Any]]:
        return list((await self._ctx.call("fs.history", path=path))["versions"])

    async def rollback(self, path: str, *, steps: int | None = None, at: float | str | None = None) -> dict[str, Any]:
        return dict(await self._ctx.call("fs.rollback", path=path, steps=steps, at=at))


def _abs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def scoped(kernel: Kernel, proc: Process) -> ScopedFS:
    """The semantic FS as ``proc`` may see it: every path confined to its grants, listings to what it may read."""
    from memory.semfs.scoped import ScopedFS

    caps = proc.caps
    return ScopedFS(semfs_of(kernel), file_grants(caps.files_read, caps.files_write))


def _read(*paths: str) -> list[Access]:
    return [Access("file", _abs(p)) for p in paths]


def _write(*paths: str) -> list[Access]:
    return [Access("file", _abs(p), write=True) for p in paths]


def _mount_roots(kernel: Kernel, mount: str | None, *, write: bool = False) -> list[Access]:
    fs = semfs_of(kernel)
    mounts = [fs.db.mount_by_name(mount)] if mount else fs.db.mounts()
    return [Access("file", str(m.path), write=write) for m in mounts]


def _scope_access(kernel: Kernel, proc: Process, mount: str | None = None) -> list[Access]:
    """A listing or search covers the caller's readable scopes (each declared as a read). With nothing
    readable it names the mount roots instead, so the call is refused and audited rather than silently empty."""
    scopes = [(m, s) for m, s in scoped(kernel, proc).scopes() if mount is None or m.name == mount]
    if scopes:
        return [Access("file", str(s)) for _, s in scopes]
    return _mount_roots(kernel, mount)


def _target_access(kernel: Kernel, proc: Process, target: str | None) -> list[Access]:
    """What listing ``target`` (nothing: every mount; ``@VIEW``; a mount's name; a folder) reads."""
    if target is None or target == "" or target.startswith("@"):
        return _scope_access(kernel, proc)
    if any(m.name == target for m in semfs_of(kernel).db.mounts()):
        return _scope_access(kernel, proc, target)
    return _read(target)


def _llm(kernel: Kernel) -> Access:
    return Access("llm", kernel.model_name)


async def _thread(fn: Any, *args: Any, pool: str = "search", **kwargs: Any) -> Any:
    """Run semantic-FS work in a bounded worker pool; a file that changed under the call (vanished, became a
    folder) is a clear error for the caller, never an internal one."""
    try:
        return await run_blocking(fn, *args, pool=pool, **kwargs)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise UsageError(f"the file system changed under the call: {exc.strerror or exc}{where}") from None


# -- mounts and indexing ----------------------------------------------------------------------------


class MountsRequest(Request):
    pass


@syscall("fs.mounts", MountsRequest, access=lambda k, p, r: _scope_access(k, p))
async def fs_mounts(kernel: Kernel, proc: Process, request: MountsRequest) -> dict[str, Any]:
    """The mounted folders the caller may read (in part or whole), with file, chunk and pending-vector counts."""
    visible = {m.name for m, _ in scoped(kernel, proc).scopes()}
    mounts = [m for m in await _thread(semfs_of(kernel).mounts, pool="db") if m["name"] in visible]
    return {"mounts": mounts, "status": await _thread(semfs_of(kernel).status, pool="db")}


class MountRequest(Request):
    path: str = Path_
    name: str | None = Field(None, max_length=64)


@syscall("fs.mount", MountRequest, access=lambda k, p, r: _write(r.path))
async def fs_mount(kernel: Kernel, proc: Process, request: MountRequest) -> dict[str, Any]:
    """Mount a folder and index it (keyword-searchable on return; vectors fill in the background).

    Mounting changes what everyone's searches cover, so it needs write access to the folder; the folder is
    opened beneath the grant with no symbolic link on the way (a link cannot make a mount of a folder outside).
    """
    fs = scoped(kernel, proc)
    mount = await _thread(fs.mount, request.path, request.name, pool="index")
    stats = await _thread(fs.fs.reconcile, mount, pool="index")
    return {"mount": mount.info(), "stats": dict(stats)}


class UnmountRequest(Request):
    name: str = Field(min_length=1, max_length=4096)


@syscall(
    "fs.unmount",
    UnmountRequest,
    access=lambda k, p, r: [Access("file", str(semfs_of(k).find_mount(r.name).path), write=True)],
)
async def fs_unmount(kernel: Kernel, proc: Process, request: UnmountRequest) -> dict[str, Any]:
    """Forget a mount's index (write access to it needed); its version history is kept for a later mount."""
    return await _thread(semfs_of(kernel).unmount, request.name, pool="index")


class IndexRequest(Request):
    path: str = Path_


@syscall("fs.index", IndexRequest, access=lambda k, p, r: _write(r.path))
async def fs_index(kernel: Kernel, proc: Process, request: IndexRequest) -> dict[str, Any]:
    """Index a folder now (mounting it if needed: write access to it needed)."""
    return await _thread(scoped(kernel, proc).index, request.path, pool="index")


# -- search and reading ------------------------------------------------------------------------------


class SearchRequest(Request):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1, le=200)
    mount: str | None = None
    glob: str | None = Field(None, max_length=500)
    type: str | None = Field(None, max_length=20)
    since: float | str | None = None
    view: str | None = Field(None, max_length=64)
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid"


@syscall("fs.search", SearchRequest, access=lambda k, p, r: _scope_access(k, p, r.mount))
async def fs_search(kernel: Kernel, proc: Process, request: SearchRequest) -> dict[str, Any]:
    """Hybrid (BM25 + vector) search over what the caller may read: best chunk per file, best first."""
    from memory.semfs import Filters, parse_since

    since = parse_since(request.since) if isinstance(request.since, str) else request.since
    filters = Filters(request.mount, request.glob, request.type, since, request.view)
    fs = scoped(kernel, proc)

    def search() -> list[dict[str, Any]]:  # the result dicts are built in the worker too, not on the loop
        return [h.as_dict() for h in fs.search(request.query, k=request.k, filters=filters, mode=request.mode)]

    return {"results": await _thread(search)}


class PathRequest(Request):
    path: str = Path_


class LsRequest(Request):
    target: str | None = Field(None, max_length=4096)


@syscall("fs.ls", LsRequest, access=lambda k, p, r: _target_access(k, p, r.target))
async def fs_ls(kernel: Kernel, proc: Process, request: LsRequest) -> dict[str, Any]:
    """Files of a mount, a folder in one, or a view (``@VIEW``): only those the caller may read."""
    return {"files": await _thread(scoped(kernel, proc).ls, request.target or None, pool="db")}


class CatRequest(Request):
    path: str = Path_
    version: int | None = None


@syscall("fs.cat", CatRequest, access=lambda k, p, r: _read(r.path))
async def fs_cat(kernel: Kernel, proc: Process, request: CatRequest) -> dict[str, Any]:
    """A file's text now, or at a version (1.. from the oldest; 0 latest, -1 the one before)."""
    data = await _thread(scoped(kernel, proc).cat, request.path, request.version, pool="db")
    return {"path": _abs(request.path), "text": data.decode("utf-8", errors="replace")}


@syscall("fs.history", PathRequest, access=lambda k, p, r: _read(r.path))
async def fs_history(kernel: Kernel, proc: Process, request: PathRequest) -> dict[str, Any]:
    """Every recorded version of a file, oldest first."""
    return {
        "path": _abs(request.path),
        "versions": await _thread(scoped(kernel, proc).history, request.path, pool="db"),
    }


class DiffRequest(Request):
    path: str = Path_
    a: int = -1
    b: int = 0


@syscall("fs.diff", DiffRequest, access=lambda k, p, r: _read(r.path))
async def fs_diff(kernel: Kernel, proc: Process, request: DiffRequest) -> dict[str, Any]:
    """Unified diff between two versions (default: the previous and the latest)."""
    return {"diff": await _thread(scoped(kernel, proc).diff, request.path, request.a, request.b, pool="db")}


# -- writes --------------------------------------------------------------------------------------------


class WriteRequest(Request):
    path: str = Path_
    text: str = Field(max_length=10_000_000)


@syscall("fs.write", WriteRequest, access=lambda k, p, r: _write(r.path))
async def fs_write(kernel: Kernel, proc: Process, request: WriteRequest) -> dict[str, Any]:
    """Write a file inside a mount (atomically, inside the grant) and index it; the write is a version."""
    fs = scoped(kernel, proc)
    outcome = await _thread(fs.write, request.path, request.text.encode(), source=f"pid:{proc.pid}", pool="index")
    return {"path": _abs(request.path), "outcome": outcome.outcome}


@syscall("fs.delete", PathRequest, access=lambda k, p, r: _write(r.path))
async def fs_delete(kernel: Kernel, proc: Process, request: PathRequest) -> dict[str, Any]:
    """Delete a file inside a mount (its history is kept, so it can be rolled back)."""
    outcome = await _thread(scoped(kernel, proc).delete, request.path, pool="index")
    return {"path": _abs(request.path), "outcome": outcome.outcome}


class RollbackRequest(Request):
    path: str = Path_
    steps: int | None = Field(None, ge=1, le=100_000)
    at: float | str | None = None


@syscall("fs.rollback", RollbackRequest, access=lambda k, p, r: _write(r.path))
async def fs_rollback(kernel: Kernel, proc: Process, request: RollbackRequest) -> dict[str, Any]:
    """Restore an earlier version (N steps back, or as of a time) through the normal write path."""
    from memory.semfs import parse_since

    at = parse_since(request.at) if isinstance(request.at, str) else request.at
    fs = scoped(kernel, proc)
    return await _thread(fs.rollback, request.path, steps=request.steps, at=at, pool="index")


# -- views, join, LLM-backed ---------------------------------------------------------------------------


class ViewsRequest(Request):
    #: A view to delete (its files are untouched); without one, the views are listed.
    drop: str | None = Field(None, min_length=1, max_length=200)


@syscall("fs.views", ViewsRequest, access=lambda k, p, r: _mount_roots(k, None, write=r.drop is not None))
async def fs_views(kernel: Kernel, proc: Process, request: ViewsRequest) -> dict[str, Any]:
    """The named views `fs.group` made (name, kind, query, file count), or drop one."""
    from memory.semfs.views import drop_view, views

    fs = semfs_of(kernel)
    if request.drop is not None:
        name = request.drop.removeprefix("@")
        await _thread(drop_view, fs, name, pool="index")
        return {"dropped": name}
    return {"views": await _thread(views, fs)}


class GroupRequest(Request):
    name: str = Field(min_length=1, max_length=64)
    query: str | None = Field(None, max_length=2000)
    mode: Literal["hybrid", "keyword", "semantic"] = "hybrid"
    k: int = Field(20, ge=1, le=500)
    clusters: int | None = Field(None, ge=2, le=50)
    mount: str | None = None


@syscall("fs.group", GroupRequest, access=lambda k, p, r: _mount_roots(k, r.mount, write=True))
async def fs_group(kernel: Kernel, proc: Process, request: GroupRequest) -> dict[str, Any]:
    """Make a named view (shared by everyone: write access to the mounts it groups needed): a query's
    files, or a mount split into k semantic clusters."""
    from memory.semfs import Filters
    from memory.semfs.views import cluster_view, query_view

    fs = scoped(kernel, proc)
    if request.clusters:
        return await _thread(cluster_view, fs.fs, request.name, request.clusters, mount=request.mount)
    if not request.query:
        raise UsageError("fs.group needs a query, or clusters=K")
    return await _thread(
        query_view,
        fs,
        request.query,
        request.name,
        mode=request.mode,
        k=request.k,
        filters=Filters(mount=request.mount),
    )


class JoinRequest(Request):
    sources: list[str] = Field(min_length=2, max_length=100)
    into: str = Path_
    merge: bool = False


def _sources(kernel: Kernel, proc: Process, targets: list[str]) -> list[Access]:
    """Reads of the files named, or listed by ``@VIEW`` (a view is read as the caller may see it)."""
    out: list[Access] = []
    for target in targets:
        out.extend(_target_access(kernel, proc, target) if target.startswith("@") else _read(target))
    return list(dict.fromkeys(out))


def _join_access(kernel: Kernel, proc: Process, request: JoinRequest) -> list[Access]:
    extra = [_llm(kernel)] if request.merge else []
    return [*_sources(kernel, proc, list(request.sources)), *_write(request.into), *extra]


@syscall("fs.join", JoinRequest, access=_join_access)
async def fs_join(kernel: Kernel, proc: Process, request: JoinRequest) -> dict[str, Any]:
    """Combine files into a new one: concatenated under headers, or merged by the LLM."""
    from memory.semfs.llm_ops import merge
    from memory.semfs.views import concat_files

    fs = scoped(kernel, proc)
    if request.merge:
        text = await merge(fs, KernelLLM(kernel, proc), list(request.sources))  # type: ignore[arg-type]
    else:
        text = await _thread(concat_files, fs, list(request.sources), pool="db")
    outcome = await _thread(fs.write, request.into, text.encode(), source="join", pool="index")
    return {"path": _abs(request.into), "outcome": outcome.outcome, "bytes": len(text.encode())}


class SummarizeRequest(Request):
    target: str = Path_


@syscall("fs.summarize", SummarizeRequest, access=lambda k, p, r: [*_sources(k, p, [r.target]), _llm(k)])
async def fs_summarize(kernel: Kernel, proc: Process, request: SummarizeRequest) -> dict[str, Any]:
    """An LLM summary of a file or a view, cached by content hash."""
    from memory.semfs.llm_ops import summarize

    llm = KernelLLM(kernel, proc)
    return await summarize(scoped(kernel, proc), llm, request.target)  # type: ignore[arg-type]


@syscall("fs.compare", DiffRequest, access=lambda k, p, r: [*_read(r.path), _llm(k)])
async def fs_compare(kernel: Kernel, proc: Process, request: DiffRequest) -> dict[str, Any]:
    """What changed between two versions of a file, in words (cached)."""
    from memory.semfs.llm_ops import compare

    llm = KernelLLM(kernel, proc)
    return await compare(scoped(kernel, proc), llm, request.path, request.a, request.b)  # type: ignore[arg-type]


class AskRequest(Request):
    request: str = Field(min_length=1, max_length=2000)


@syscall("fs.ask", AskRequest, access=lambda k, p, r: [_llm(k)])
async def fs_ask(kernel: Kernel, proc: Process, request: AskRequest) -> dict[str, Any]:
    """Turn a natural-language request into a typed plan of fs operations (not run; see fs.run_plan)."""
    from memory.semfs.llm_ops import plan

    the_plan = await plan(scoped(kernel, proc), KernelLLM(kernel, proc), request.request)  # type: ignore[arg-type]
    from memory.semfs.llm_ops import DESTRUCTIVE

    return {"plan": the_plan.model_dump(), "destructive": the_plan.destructive, "destructive_ops": sorted(DESTRUCTIVE)}


class RunPlanRequest(Request):
    plan: dict[str, Any]
    #: The user confirmed the destructive steps (the caller must have asked).
    confirmed: bool = False


def _step_access(kernel: Kernel, proc: Process, step: Any) -> list[Access]:
    """Every access one plan step makes, as the syscall that does the same work declares it."""
    op, path = step.op, step.path.strip()
    if op == "search":
        return _scope_access(kernel, proc)
    if op == "ls":
        return _target_access(kernel, proc, path or None)
    if op == "group":
        return _mount_roots(kernel, None, write=True)
    if op == "join":
        sources = [p.strip() for p in step.path.split(",") if p.strip()]
        return [*_sources(kernel, proc, sources), *_write(step.dest or path)]
    if op == "move":
        return [*_write(path), *_write(step.dest or path)]
    if op in ("rollback", "write", "delete"):
        return _write(path)
    if op == "summarize":
        return [*_sources(kernel, proc, [path]), _llm(kernel)]
    return _read(path)  # cat, history, diff


def _plan_access(kernel: Kernel, proc: Process, request: RunPlanRequest) -> list[Access]:
    from memory.semfs.llm_ops import Plan

    the_plan = Plan.model_validate(request.plan)
    return list(dict.fromkeys(a for step in the_plan.steps for a in _step_access(kernel, proc, step)))


@syscall("fs.run_plan", RunPlanRequest, access=_plan_access)
async def fs_run_plan(kernel: Kernel, proc: Process, request: RunPlanRequest) -> dict[str, Any]:
    """Run a plan from fs.ask; destructive steps run only when ``confirmed``. Every step runs confined to the
    caller's grants (the whole plan was checked step by step before the first one ran)."""
    from memory.semfs.llm_ops import Plan, run_plan

    async def confirm(step: Any) -> bool:
        return request.confirmed

    llm = KernelLLM(kernel, proc)
    the_plan = Plan.model_validate(request.plan)
    return {"results": await run_plan(scoped(kernel, proc), llm, the_plan, confirm=confirm)}  # type: ignore[arg-type]


class CheckRequest(Request):
    rebuild: bool = False


@syscall("fs.check", CheckRequest, access=lambda k, p, r: _mount_roots(k, None, write=r.rebuild))
async def fs_check(kernel: Kernel, proc: Process, request: CheckRequest) -> dict[str, Any]:
    """Report drift between SQLite and its derived indexes (FTS5, chroma); optionally rebuild them."""
    from memory.semfs.check import check, rebuild

    fs = semfs_of(kernel)
    return await _thread(rebuild if request.rebuild else check, fs, pool="index")
