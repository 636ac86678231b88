"""The race attack shared by tests/security/test_races.py and bench/security: a separate process swaps a
granted file and granted folders for symbolic links to the outside while calls of each kind run over the
socket; every outcome is tallied (ok, denied, refused, escaped, internal error)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from _adversary import OUTSIDE_SECRET, World, leaked
from _racer import Tally, racing

from aios.errors import AiosError, PermissionDenied

__all__ = ["indexed_secrets", "race_all"]

KINDS = ("cat", "write", "ls", "index", "mount")


async def _one(tally: Tally, call: Any, check: Callable[[Any], bool] = lambda r: False) -> Any:
    try:
        result = await call
    except PermissionDenied:
        tally.note("denied")
        return None
    except AiosError as exc:
        tally.note("internal" if exc.message.startswith("internal error") else "refused", exc.message)
        return None
    if leaked(repr(result)) or check(result):
        tally.note("escapes", repr(result))
    else:
        tally.note("ok")
    return result


async def race_all(world: World, callers: dict[str, Any], calls: int) -> dict[str, Tally]:
    """The calls of each kind, with the file and folder racing. Returns a tally per kind."""
    g, free = world.granted, world.root / "free"
    intruder, mounter = callers["intruder"], callers["mounter"]
    tallies = {k: Tally() for k in KINDS}
    with racing(
        (g / "race.txt", world.outside / "secret.txt"),
        (g / "racedir", world.outside / "dir"),
        (free / "racedir", world.outside / "dir"),
    ):
        for i in range(calls):
            path = g / "race.txt" if i % 2 else g / "racedir" / "secret.txt"
            await _one(tallies["cat"], intruder.call("fs.cat", path=str(path)))
            await _one(tallies["write"], intruder.call("fs.write", path=str(g / "racedir" / f"w{i % 7}.txt"), text="x"))
            await _one(tallies["ls"], intruder.call("fs.ls", target=str(g / "racedir")))
            await _one(tallies["index"], intruder.call("fs.index", path=str(g / "racedir")))

            def outside_mount(result: Any) -> bool:
                return not Path(result["mount"]["path"]).is_relative_to(free)

            mounted = await _one(
                tallies["mount"], mounter.call("fs.mount", path=str(free / "racedir"), name="r"), outside_mount
            )
            if mounted is not None:
                await mounter.call("fs.unmount", name="r")
    return tallies


def indexed_secrets(rig: Any) -> int:
    """Chunks in the index that hold the outside secret (must stay 0)."""
    db = rig.kernel.services["semfs"].db
    return int(db.scalar("SELECT count(*) FROM semfs_chunks WHERE text LIKE ?", (f"%{OUTSIDE_SECRET}%",)))
