"""The adversarial corpus through the real socket with process tokens: symlinks and hard links out of a grant,
``..`` through linked folders, paths beside and outside the grant, and every mutating call by read-only
callers. Nothing outside may be returned, written, deleted or mounted, and every attempt is audited ``deny``."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _adversary import corpus, denied_rows, leaked, open_world, run_attempt, snapshot

from aios.errors import PermissionDenied

pytestmark = pytest.mark.anyio


async def test_no_attempt_in_the_corpus_escapes(tmp_path: Path) -> None:
    with anyio.fail_after(120):
        async with open_world(tmp_path) as (rig, world, callers):
            before = snapshot(world.private, world.outside, world.granted)
            attempts = corpus(world)
            assert len(attempts) >= 140
            outcomes = [(a, *await run_attempt(callers, a)) for a in attempts]
            after = snapshot(world.private, world.outside, world.granted)
            mounts = [m.path for m in rig.kernel.services["semfs"].db.mounts()]
            denied = denied_rows(rig)
    not_denied = [
        (a.label(), outcome, detail[:120])
        for a, outcome, detail in outcomes
        if outcome == "allowed" or (a.must_deny and outcome != "denied")
    ]
    assert not_denied == [], "\n".join(map(str, not_denied))
    assert [a.label() for a, _, detail in outcomes if leaked(detail)] == []
    assert after == before  # nothing written, deleted or planted, in the grant or out of it
    assert mounts == [world.mount]
    # One audited deny (at least) per attempt, with the syscall named.
    per_syscall: dict[str, int] = {}
    for row in denied:
        per_syscall[row["syscall"]] = per_syscall.get(row["syscall"], 0) + 1
    wanted: dict[str, int] = {}
    for a in [a for a in attempts if a.must_deny]:
        wanted[a.syscall] = wanted.get(a.syscall, 0) + 1
    assert all(per_syscall.get(name, 0) >= n for name, n in wanted.items()), (per_syscall, wanted)


async def test_reads_inside_the_grant_still_work(tmp_path: Path) -> None:
    """The guard is not a wall: a link that stays inside the grant is followed, plain files read and write."""
    with anyio.fail_after(60):
        async with open_world(tmp_path) as (_rig, world, callers):
            g = world.granted
            (g / "inner_link").symlink_to("sub/b.txt")
            intruder = callers["intruder"]
            assert "bees" in (await intruder.call("fs.cat", path=str(g / "inner_link")))["text"]
            assert "apples" in (await intruder.call("fs.cat", path=str(g / "a.txt")))["text"]
            await intruder.call("fs.write", path=str(g / "sub" / "new.txt"), text="fresh")
            assert (g / "sub" / "new.txt").read_text() == "fresh"
            found = await intruder.call("fs.search", query="apples", mode="keyword")
            assert [r["relpath"] for r in found["results"]] == ["granted/a.txt"]
            # Search and listing cover only the granted folder, even for words that are in the private one.
            assert (await intruder.call("fs.search", query="orchard plans", mode="keyword"))["results"] == []
            listed = {r["relpath"] for r in (await intruder.call("fs.ls"))["files"]}
            assert listed and all(p.startswith("granted/") for p in listed)
            # The auditor (read on the whole mount) sees the private file through the index, as granted.
            seen = await callers["auditor"].call("fs.search", query="orchard plans", mode="keyword")
            assert [r["relpath"] for r in seen["results"]] == ["private/diary.txt"]
            # A hard-linked file is never indexed (it may be a file from outside under a second name).
            hits = (await callers["auditor"].call("fs.search", query="vault code", mode="keyword"))["results"]
            assert [r["relpath"] for r in hits] == ["private/secret.txt"]


async def test_views_and_hard_linked_targets_do_not_open_a_way_out(tmp_path: Path) -> None:
    """A view the user made over the whole mount (private files included) is read as the caller may see it,
    and a join may not land on a hard-linked name."""
    from memory.semfs.views import query_view

    with anyio.fail_after(60):
        async with open_world(tmp_path) as (rig, world, callers):
            semfs = rig.kernel.services["semfs"]
            view = await anyio.to_thread.run_sync(
                lambda: query_view(semfs, "orchard plans apples", "everything", mode="keyword")
            )
            assert view["files"] >= 2  # granted/a.txt and private/diary.txt
            intruder = callers["intruder"]
            listed = [r["relpath"] for r in (await intruder.call("fs.ls", target="@everything"))["files"]]
            assert listed == ["granted/a.txt"]
            found = await intruder.call("fs.search", query="orchard plans", view="everything", mode="keyword")
            assert found["results"] == []
            text = (await intruder.call("fs.summarize", target="@everything"))["summary"]
            assert "orchard" not in text and not leaked(text)
            before = (world.private / "hard.txt").read_text()
            sources = [str(world.granted / "a.txt"), str(world.granted / "sub" / "b.txt")]
            with pytest.raises(PermissionDenied, match="hard links"):
                await intruder.call("fs.join", sources=sources, into=str(world.granted / "hard_private"))
            assert (world.private / "hard.txt").read_text() == before
            assert (world.granted / "hard_private").stat().st_nlink == 2
