"""The aios kernel: processes, the shared LLM engine, syscalls."""

from __future__ import annotations

from kernel.kernel import Kernel, load_runtime, open_kernel
from kernel.process import ProcState

__all__ = ["Kernel", "ProcState", "load_runtime", "open_kernel"]
