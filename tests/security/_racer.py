"""A thread that swaps a file and a folder for symbolic links to the outside, as fast as it can, while calls
run; and the bookkeeping of what each call got. Shared by the race tests and ``bench/security``."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Racer", "Tally", "racing"]


class Racer:
    """Flips ``path`` between the real thing and a symlink to ``target`` until stopped, in its own process (as
    an attacker would, and so it never waits on this process's GIL). Each state is held for a random moment
    of up to ``hold_s``, so calls meet the real thing, the link, and the swap itself."""

    def __init__(self, path: Path, target: Path, hold_s: float = 0.002) -> None:
        self.path, self.target, self.hold_s = path, target, hold_s
        self.parked = path.with_name(path.name + ".parked")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, __file__, str(self.path), str(self.target), str(self.parked), str(self.hold_s)]
        self.proc = subprocess.Popen(args)

    def finish(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        restore(self.path, self.parked)


def restore(path: Path, parked: Path) -> None:
    """Put the real thing back where it was (whatever state the racer was stopped in)."""
    if os.path.islink(path):
        os.unlink(path)
    if os.path.lexists(parked):
        # A call under test made the name meanwhile (a write creates missing folders): the parked one wins.
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        os.rename(parked, path)


def _flip(path: Path, target: Path, parked: Path, hold_s: float) -> None:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    rng = random.Random(os.getpid())
    parent = os.getppid()
    # Stop with the test: on SIGTERM, when the process that started us is gone, or when the folder is.
    while not stopping and os.getppid() == parent and path.parent.is_dir():
        try:
            os.rename(path, parked)
            os.symlink(target, path)
            time.sleep(rng.uniform(0, hold_s))
            os.unlink(path)
            os.rename(parked, path)
            time.sleep(rng.uniform(0, hold_s))
        except OSError:
            restore(path, parked)


@contextlib.contextmanager
def racing(*pairs: tuple[Path, Path]) -> Iterator[list[Racer]]:
    racers = [Racer(path, target) for path, target in pairs]
    for r in racers:
        r.start()
    try:
        yield racers
    finally:
        for r in racers:
            r.finish()


@dataclass
class Tally:
    """Outcomes of the calls of one kind: ok, denied, other refusals, escapes and internal errors."""

    ok: int = 0
    denied: int = 0
    refused: int = 0
    escapes: int = 0
    internal: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return self.ok + self.denied + self.refused + self.internal

    def note(self, kind: str, detail: str = "") -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if kind in ("escapes", "internal", "refused") and len(self.samples) < 5:
            self.samples.append(detail[:200])


if __name__ == "__main__":
    _flip(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
