"""``proc.*`` syscalls an agent makes about processes (its own and its children)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernel.syscalls import Request, syscall

if TYPE_CHECKING:
    from kernel.kernel import Kernel
    from kernel.process import Process


class ProcSelfRequest(Request):
    pass


@syscall("proc.self", ProcSelfRequest, access=lambda k, p, r: [])
async def proc_self(kernel: Kernel, proc: Process, request: ProcSelfRequest) -> dict[str, Any]:
    """This process's own entry in the process table."""
    return kernel.info(proc.pid)

