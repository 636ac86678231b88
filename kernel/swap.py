"""Where swapped-out KV state goes (RAM up to a cap, then files under ``swap/``), and the cost model that
decides between swapping a context out and dropping it to recompute later."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CostModel", "SwapHandle", "SwapStore"]

log = logging.getLogger(__name__)


@dataclass
class SwapHandle:
    nbytes: int
    data: np.ndarray | None = None
    path: Path | None = None

    @property
    def where(self) -> str:
        return "ram" if self.data is not None else "file"


class SwapStore:
    def __init__(self, directory: Path, *, ram_cap_bytes: int) -> None:
        self.directory = directory
        self.ram_cap_bytes = ram_cap_bytes
        self.ram_used = 0
        self.file_used = 0

    def put(self, data: np.ndarray, *, force_file: bool = False) -> SwapHandle:
        """Keep ``data`` in RAM if it fits under the cap, else write it to a file. Raises OSError if the
        file cannot be written (a full disk): the caller then drops the context instead."""
        if not force_file and self.ram_used + data.nbytes <= self.ram_cap_bytes:
            self.ram_used += data.nbytes
            return SwapHandle(data.nbytes, data=data)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{uuid.uuid4().hex}.kv"
        try:
            # KV state holds the agent's conversation: 0600 whatever the process umask.
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                data.tofile(fh)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        self.file_used += data.nbytes
        return SwapHandle(data.nbytes, path=path)

    def take(self, handle: SwapHandle) -> np.ndarray:
        if handle.data is not None:
            data = handle.data
        else:
            assert handle.path is not None
            data = np.fromfile(handle.path, dtype=np.uint8)
        self.discard(handle)
        return data

    def discard(self, handle: SwapHandle) -> None:
        if handle.data is not None:
            self.ram_used -= handle.nbytes
            handle.data = None
        elif handle.path is not None:
            self.file_used -= handle.nbytes
            handle.path.unlink(missing_ok=True)
            handle.path = None


class CostModel:
    """Exponential moving averages of measured speeds, seeded with this machine's measurements."""

    def __init__(
        self,
        *,
        prefill_tok_s: float = 400.0,
        save_b_s: float = 5e9,
        restore_ram_b_s: float = 5e9,
        restore_file_b_s: float = 2e9,
        alpha: float = 0.3,
    ) -> None:
        self.rates = {"prefill": prefill_tok_s, "save": save_b_s, "ram": restore_ram_b_s, "file": restore_file_b_s}
        self.alpha = alpha

    def observe(self, kind: str, amount: float, seconds: float) -> None:
        if seconds <= 0 or amount <= 0:
            return
        self.rates[kind] = (1 - self.alpha) * self.rates[kind] + self.alpha * (amount / seconds)

    def recompute_s(self, tokens: int) -> float:
        return tokens / self.rates["prefill"]

    def swap_s(self, nbytes: int, where: str) -> float:
        return nbytes / self.rates["save"] + nbytes / self.rates[where]

    def should_swap(self, tokens: int, nbytes: int, where: str) -> bool:
        return self.swap_s(nbytes, where) < self.recompute_s(tokens)
