"""Check-then-use races: while a thread swaps a granted file and a granted folder for symbolic links to the
outside, at least 1,000 calls each of cat, write, ls, index and mount go through the real socket. None may
return the outside content, create or change anything outside, or fail with an internal error; and the race
harness itself is shown to catch an unguarded open."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from _adversary import OUTSIDE_SECRET, open_world, snapshot
from _attacks import indexed_secrets, race_all
from _racer import Tally, racing

from aios.errors import PermissionDenied

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = int(os.environ.get("AIOS_RACE_CALLS", "1000"))


async def test_no_call_escapes_while_files_and_folders_are_swapped_for_links(tmp_path: Path) -> None:
    with anyio.fail_after(900):
        async with open_world(tmp_path) as (rig, world, callers):
            before = snapshot(world.outside, world.private)
            tallies = await race_all(world, callers, CALLS)
            after = snapshot(world.outside, world.private)
            indexed = indexed_secrets(rig)
            mounts = [m.path for m in rig.kernel.services["semfs"].db.mounts()]
    report = {k: (t.calls, t.ok, t.denied, t.refused, t.escapes, t.internal, t.samples) for k, t in tallies.items()}
    assert all(t.calls >= CALLS for t in tallies.values()), report
    assert sum(t.escapes for t in tallies.values()) == 0, report
    assert sum(t.internal for t in tallies.values()) == 0, report
    assert after == before  # nothing created, changed or removed outside the grant
    assert indexed == 0  # the index never took in the outside file
    assert mounts == [world.mount]
    # The race really ran both ways: reads got through and were refused.
    assert tallies["cat"].ok > 0 and tallies["cat"].denied > 0, report


class _Unguarded:
    """A test double of the old guard: check the real path, then open the path by name (the classic race)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, path: Path) -> bytes:
        if not os.path.realpath(path).startswith(str(self.root) + "/"):
            raise PermissionDenied(f"{path} leads outside")
        with open(path, "rb") as fh:
            return fh.read()


def test_the_race_harness_catches_an_unguarded_open(tmp_path: Path) -> None:
    """Without the confined open, the same race leaks the outside file (so the test above can fail)."""
    from aios.confined import Confined

    root, outside = tmp_path / "granted", tmp_path / "outside"
    (root / "racedir").mkdir(parents=True)
    (root / "racedir" / "secret.txt").write_text("harmless")
    outside.mkdir()
    (outside / "secret.txt").write_text(OUTSIDE_SECRET)

    def run(read: Callable[[Path], bytes], tries: int = 200_000) -> Tally:
        tally = Tally()
        with racing((root / "racedir", outside)):
            for _ in range(tries):
                try:
                    data = read(root / "racedir" / "secret.txt")
                except (PermissionDenied, OSError):
                    tally.note("denied")
                    continue
                tally.note("escapes" if OUTSIDE_SECRET.encode() in data else "ok")
                if tally.escapes and tally.ok and tally.denied and tally.calls >= 3000:
                    break
        return tally

    unguarded = run(_Unguarded(root).read)
    assert unguarded.escapes > 0  # the harness sees the escape the check-then-open allows
    guarded = run(Confined.at(root).read, tries=5000)
    assert guarded.escapes == 0 and guarded.ok > 0
