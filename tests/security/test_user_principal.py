"""The person at the terminal is a principal of its own: every front-end action goes through Kernel.dispatch,
checked against ``[access.user]`` (everything by default), audited as agent "user", and confined like any."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from _adversary import adversaries, build_world

from aios.client import DaemonClient
from aios.config import AgentGrant, Config
from aios.errors import PermissionDenied

pytestmark = pytest.mark.anyio


async def test_the_user_is_checked_audited_and_confined(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
    from _access_kit import open_rig

    root = tmp_path / "files"
    config = Config()
    config.access.user = AgentGrant(files_write=[str(root / "mount" / "granted")])
    with anyio.fail_after(60):
        async with open_rig(tmp_path, "socket", config=config, agents=adversaries) as rig:
            world = build_world(rig.root)
            front = DaemonClient(rig.socket, rig.frontend_token)
            await anyio.to_thread.run_sync(lambda: front.fs("fs.index", path=str(world.granted)))
            # Inside the narrowed grant: allowed, and audited under the user principal by dispatch.
            await anyio.to_thread.run_sync(
                lambda: front.fs("fs.write", path=str(world.granted / "a.txt"), text="by me\n")
            )
            assert (world.granted / "a.txt").read_text() == "by me\n"
            # Outside it ([access.user] narrows even the person at the terminal): refused, nothing written.
            with pytest.raises(PermissionDenied):
                await anyio.to_thread.run_sync(
                    lambda: front.fs("fs.write", path=str(world.private / "secret.txt"), text="x")
                )
            # Confined like any caller: a link in the grant to the private folder is not followed.
            with pytest.raises(PermissionDenied):
                await anyio.to_thread.run_sync(lambda: front.fs("fs.cat", path=str(world.granted / "rel_private")))
            # In-process front ends take the same door.
            with pytest.raises(PermissionDenied):
                await rig.run(lambda: rig.kernel.call("fs.delete", path=str(world.private / "diary.txt")))
            rows = [r for r in rig.kernel.audit_rows(agent="user", limit=1000) if r["syscall"].startswith("fs.")]
    assert (world.private / "diary.txt").exists()
    decisions = {(r["syscall"], r["decision"]) for r in rows}
    assert {("fs.write", "allow"), ("fs.write", "deny"), ("fs.cat", "deny"), ("fs.delete", "deny")} <= decisions
    assert all(r["token_id"] == "frontend" for r in rows)
