"""The aios kernel: processes, the shared LLM engine, syscalls.

The public names load lazily, so importing one light module (``kernel.connect``, ``kernel.events``) does not
pull in the engine, the stores and the MCP SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernel.kernel import Kernel, load_runtime, open_kernel
    from kernel.process import ProcState

__all__ = ["Kernel", "ProcState", "load_runtime", "open_kernel"]


def __getattr__(name: str) -> Any:
    if name in ("Kernel", "load_runtime", "open_kernel"):
        from kernel import kernel as module

        return getattr(module, name)
    if name == "ProcState":
        from kernel.process import ProcState

        return ProcState
    raise AttributeError(f"module 'kernel' has no attribute {name!r}")
