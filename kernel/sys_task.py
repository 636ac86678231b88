"""``task.*`` syscalls: an agent's task-memory trees (memory/tasktree.py), checked as Access("task", "t<id>").

Each call is SQLite on the kernel store's connection: it runs in the ``db`` worker pool, under the memory
service's lock for the whole call (its check-then-write steps must not interleave with another call's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import Field

from aios.errors import AiosError
from kernel.blocking import run_blocking
from kernel.syscalls import Access, Request, syscall
from memory.service import memory_service
from memory.taskprompt import synthesize
from memory.tasktree import TaskTreeStore

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process

T = TypeVar("T")

_TITLE = Field(min_length=1, max_length=200)
_TEXT = Field("", max_length=20_000)
NodeId = Field(ge=1)


async def _run(kernel: Kernel, body: Callable[[TaskTreeStore], T]) -> T:
    """``body(tasks)`` in the ``db`` pool, holding the store lock throughout."""

    def locked() -> T:
        service = memory_service(kernel)
        with service.lock:
            return body(service.tasks)

    return await run_blocking(locked, pool="db")


def _actor(proc: Process) -> str:
    return f"agent:{proc.agent}#{proc.pid}"


def _tree_access(write: bool) -> Any:
    return lambda k, p, r: [Access("task", f"t{r.tree}", write=write)]


class TaskCreateRequest(Request):
    title: str = _TITLE
    input: str = _TEXT


class TaskListRequest(Request):
    pid: int | None = Field(None, ge=1)


class TaskTreeRequest(Request):
    tree: int = Field(ge=1)


class TaskTreesRequest(Request):
    pid: int | None = Field(None, ge=1)
    owner: str | None = Field(None, min_length=1, max_length=200)
    nodes: bool = False


class TaskShowRequest(Request):
    node: int = NodeId


class TaskAddRequest(Request):
    tree: int = Field(ge=1)
    title: str = _TITLE
    parent: int | None = Field(None, ge=1)
    input: str = _TEXT
    output: str = _TEXT
    status: str = "pending"
    depends_on: list[int] = Field(default_factory=list, max_length=100)
    activate: bool = True


class TaskDependRequest(Request):
    tree: int = Field(ge=1)
    node: int = NodeId
    on: int = NodeId


class TaskUpdateRequest(Request):
    tree: int = Field(ge=1)
    node: int = NodeId
    title: str | None = Field(None, min_length=1, max_length=200)
    input: str | None = Field(None, max_length=20_000)
    output: str | None = Field(None, max_length=20_000)
    status: str | None = None


class TaskReplaceRequest(Request):
    tree: int = Field(ge=1)
    nodes: list[int] = Field(min_length=1, max_length=50)
    title: str = _TITLE
    input: str = _TEXT
    output: str = _TEXT
    status: str = "done"


class TaskNodeRequest(Request):
    tree: int = Field(ge=1)
    node: int = NodeId


class TaskRollbackRequest(Request):
    tree: int = Field(ge=1)
    node: int = NodeId
    version: int


class TaskPathRequest(Request):
    tree: int = Field(ge=1)
    node: int | None = Field(None, ge=1)


class TaskPromptRequest(Request):
    tree: int = Field(ge=1)
    node: int | None = Field(None, ge=1)
    budget: int = Field(1024, le=1_000_000)


@syscall("task.create", TaskCreateRequest, access=lambda k, p, r: [Access("task", "new", write=True)])
async def task_create(kernel: Kernel, proc: Process, request: TaskCreateRequest) -> dict[str, Any]:
    """Start a task tree owned by the calling agent; its root is the task itself."""
    tree = await _run(
        kernel,
        lambda tasks: tasks.create_tree(
            owner=proc.agent, title=request.title, input=request.input, pid=proc.pid, actor=_actor(proc)
        ),
    )
    kernel.note_task_owner(int(tree["id"]), str(tree["owner"]))
    return tree


@syscall("task.list", TaskListRequest, access=lambda k, p, r: [Access("task", "self")])
async def task_list(kernel: Kernel, proc: Process, request: TaskListRequest) -> list[dict[str, Any]]:
    """The calling agent's task trees (optionally those one process created)."""
    return await _run(kernel, lambda tasks: tasks.trees(owner=proc.agent, pid=request.pid))


def _visible(kernel: Kernel, proc: Process, tree: dict[str, Any]) -> bool:
    """Whether the caller may read this tree (its own, or another agent's through a memory grant)."""
    kernel.note_task_owner(int(tree["id"]), str(tree["owner"]))
    decision, _ = kernel.guard.decide(proc, proc.caps, Access("task", f"t{tree['id']}"))
    return decision == "allow"


@syscall("task.trees", TaskTreesRequest, access=lambda k, p, r: [Access("task", "self")])
async def task_trees(kernel: Kernel, proc: Process, request: TaskTreesRequest) -> list[dict[str, Any]]:
    """Every task tree the caller may read (its own, and other agents' its memory grants cover), optionally
    only one process's or one owner's, with their nodes if asked (what `aios tasks` and the TUI list)."""
    rows = await _run(kernel, lambda tasks: tasks.trees(owner=request.owner, pid=request.pid))
    visible = [row for row in rows if _visible(kernel, proc, row)]
    if request.nodes:
        ids = [int(row["id"]) for row in visible]
        nodes = await _run(kernel, lambda tasks: {tree: tasks.nodes(tree) for tree in ids})
        visible = [{**row, "nodes": nodes[int(row["id"])]} for row in visible]
    return visible


def _node_tree(kernel: Kernel, node: int) -> str:
    """``t<id>`` of the tree holding ``node`` (one indexed read; ``t0`` if there is none: the handler's
    "not found")."""
    tasks = getattr(kernel.services.get("memory"), "tasks", None)
    if tasks is None:
        return "t0"
    try:
        return f"t{int(tasks.node(node)['tree_id'])}"
    except (AiosError, KeyError):
        return "t0"


@syscall("task.show", TaskShowRequest, access=lambda k, p, r: [Access("task", _node_tree(k, r.node))])
async def task_show(kernel: Kernel, proc: Process, request: TaskShowRequest) -> dict[str, Any]:
    """One step by its id alone, with its dependents and every version (its tree checked like task.get)."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        row = tasks.node(request.node)
        return {**row, "dependents": tasks.dependents(request.node), "versions": tasks.history(request.node)}

    return await _run(kernel, body)


@syscall("task.get", TaskTreeRequest, access=_tree_access(False))
async def task_get(kernel: Kernel, proc: Process, request: TaskTreeRequest) -> dict[str, Any]:
    """A tree and all its nodes (superseded ones included, marked)."""
    return await _run(kernel, lambda tasks: {"tree": tasks.tree(request.tree), "nodes": tasks.nodes(request.tree)})


@syscall("task.add", TaskAddRequest, access=_tree_access(True))
async def task_add(kernel: Kernel, proc: Process, request: TaskAddRequest) -> dict[str, Any]:
    """Add a step under ``parent`` (default: the root), with dependencies; it becomes active unless told not."""
    return await _run(
        kernel,
        lambda tasks: tasks.add_node(
            request.tree,
            title=request.title,
            parent_id=request.parent,
            input=request.input,
            output=request.output,
            status=request.status,
            depends_on=request.depends_on,
            actor=_actor(proc),
            activate=request.activate,
        ),
    )


@syscall("task.depend", TaskDependRequest, access=_tree_access(True))
async def task_depend(kernel: Kernel, proc: Process, request: TaskDependRequest) -> dict[str, Any]:
    """Make ``node`` depend on ``on`` (refused if it would close a cycle)."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        tasks.node(request.node, tree_id=request.tree)
        return tasks.add_dependency(request.node, request.on, actor=_actor(proc))

    return await _run(kernel, body)


@syscall("task.update", TaskUpdateRequest, access=_tree_access(True))
async def task_update(kernel: Kernel, proc: Process, request: TaskUpdateRequest) -> dict[str, Any]:
    """Write a new version of a step; its dependents are flagged for re-check."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        tasks.node(request.node, tree_id=request.tree)
        return tasks.update(
            request.node,
            actor=_actor(proc),
            title=request.title,
            input=request.input,
            output=request.output,
            status=request.status,
        )

    return await _run(kernel, body)


@syscall("task.replace", TaskReplaceRequest, access=_tree_access(True))
async def task_replace(kernel: Kernel, proc: Process, request: TaskReplaceRequest) -> dict[str, Any]:
    """Supersede one step (a correction) or several (a merge) with one new step."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        for node in request.nodes:
            tasks.node(node, tree_id=request.tree)
        return tasks.replace(
            request.nodes,
            title=request.title,
            output=request.output,
            input=request.input,
            status=request.status,
            actor=_actor(proc),
        )

    return await _run(kernel, body)


@syscall("task.supersede", TaskNodeRequest, access=_tree_access(True))
async def task_supersede(kernel: Kernel, proc: Process, request: TaskNodeRequest) -> dict[str, Any]:
    """Drop a step without a replacement (roll it back to restore it)."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        tasks.node(request.node, tree_id=request.tree)
        return tasks.supersede(request.node, actor=_actor(proc))

    return await _run(kernel, body)


@syscall("task.rollback", TaskRollbackRequest, access=_tree_access(True))
async def task_rollback(kernel: Kernel, proc: Process, request: TaskRollbackRequest) -> dict[str, Any]:
    """Restore a step as it was at ``version``; its dependents are flagged for re-check."""

    def body(tasks: TaskTreeStore) -> dict[str, Any]:
        tasks.node(request.node, tree_id=request.tree)
        return tasks.rollback(request.node, request.version, actor=_actor(proc))

    return await _run(kernel, body)


@syscall("task.activate", TaskNodeRequest, access=_tree_access(True))
async def task_activate(kernel: Kernel, proc: Process, request: TaskNodeRequest) -> dict[str, Any]:
    """Make a step the active one (the one prompts are built for)."""
    return await _run(kernel, lambda tasks: tasks.set_active(request.tree, request.node))


@syscall("task.history", TaskNodeRequest, access=_tree_access(False))
async def task_history(kernel: Kernel, proc: Process, request: TaskNodeRequest) -> list[dict[str, Any]]:
    """Every version of a step, with the actor that wrote it."""

    def body(tasks: TaskTreeStore) -> list[dict[str, Any]]:
        tasks.node(request.node, tree_id=request.tree)
        return tasks.history(request.node)

    return await _run(kernel, body)


@syscall("task.path", TaskPathRequest, access=_tree_access(False))
async def task_path(kernel: Kernel, proc: Process, request: TaskPathRequest) -> list[dict[str, Any]]:
    """The steps from the root to ``node`` (default: the active one)."""
    return await _run(kernel, lambda tasks: tasks.active_path(request.tree, request.node))


@syscall("task.prompt", TaskPromptRequest, access=_tree_access(False))
async def task_prompt(kernel: Kernel, proc: Process, request: TaskPromptRequest) -> dict[str, Any]:
    """The task slice of a prompt: the active path plus its dependencies within ``budget`` tokens, counted
    with the running model's tokenizer (a remote engine estimates; ``counter`` in the answer says which)."""
    counter = "tokenizer" if kernel.engine.exact_token_count else "estimate"
    return await _run(
        kernel,
        lambda tasks: synthesize(
            tasks,
            request.tree,
            budget=request.budget,
            node_id=request.node,
            count_tokens=kernel.count_tokens,  # thread-safe (the engine tokenizes under a lock)
            counter=counter,
        ).as_dict(),
    )


class TaskClassifyRequest(Request):
    tree: int = Field(ge=1)
    message: str = Field(min_length=1, max_length=20_000)
    #: File the message into the tree (a new step, an update, a restored step) as well as classifying it.
    apply: bool = False
    #: Let the message's structure decide where it can (False: always ask the model; for measuring it).
    rules: bool = True


@syscall("task.classify", TaskClassifyRequest, access=lambda k, p, r: [Access("task", f"t{r.tree}", write=r.apply)])
async def task_classify(kernel: Kernel, proc: Process, request: TaskClassifyRequest) -> dict[str, Any]:
    """Which kind of turn a user message is (``new_step``, ``update``, ``question``) and which step it is
    about: decided by the text's structure where it can be (``by: rule``), else by ONE grammar-constrained
    ``llm.chat`` of the caller (``by: model``); with ``apply`` also filed into the tree through the task
    syscalls (``about``: the step a reply is about; ``new``: whether that step still needs a value)."""
    import logging

    from aios.errors import BudgetExceeded, PermissionDenied
    from kernel.context import ProcessContext
    from memory.taskclassify import (
        Classification,
        apply_classification,
        classify_turn,
        live_steps,
        removed_steps,
    )

    state: dict[str, Any] = await _run(
        kernel, lambda tasks: {"tree": tasks.tree(request.tree), "nodes": tasks.nodes(request.tree)}
    )
    ctx = ProcessContext(kernel, proc)
    try:
        found = await classify_turn(
            ctx.llm.chat,
            live_steps(state),
            request.message,
            removed=removed_steps(state),
            active=state["tree"]["active_id"],
            rules=request.rules,
        )
    except (BudgetExceeded, PermissionDenied):
        raise
    except AiosError as exc:  # a backend without grammars, or an answer that does not parse
        logging.getLogger(__name__).info("turn classification failed (%s): filed as a new step", exc.message)
        found = Classification("new_step", None, "", "", by="fallback")
    out = found.as_dict()
    if request.apply:
        about, new = await apply_classification(ctx.call, state, found, request.message)
        out.update(about=about, new=new)
    return out
