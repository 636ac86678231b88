"""The aios kernel: processes, the shared LLM engine, syscalls."""

from __future__ import annotations

from kernel.kernel import Kernel, load_backend, open_kernel
from kernel.process import ProcState

__all__ = ["Kernel", "ProcState", "load_backend", "open_kernel"]
