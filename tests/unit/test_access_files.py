"""File capabilities through the real syscall path (dispatch -> guard -> confined open), in-process and over
the socket: a table of escape attempts of which none may succeed, writes outside the write grant, and a
symlink swapped in after the check."""

from __future__ import annotations

import os
import threading
import unicodedata
from pathlib import Path

import anyio
import pytest
from _access_kit import open_rig

from aios.errors import PermissionDenied

pytestmark = pytest.mark.anyio

TRANSPORTS = ["inproc", "socket"]

ALLOWED = [
    ("note.txt", "granted note"),
    ("./note.txt", "granted note"),
    ("rw/../note.txt", "granted note"),
    ("rw//x.txt", "rw file"),
    (unicodedata.normalize("NFC", "café/menu.txt"), "menu"),
]

ESCAPES = [
    "../secret.txt",
    "rw/../../secret.txt",
    "../../../../../../../../etc/passwd",
    "link",
    "dirlink/secret.txt",
    "~/secret.txt",
    "~",
    "/etc/passwd",
    "/dev/zero",
    "devlink",
    "fifo",
    "note.txt/",
    "note.txt/../../secret.txt",
    unicodedata.normalize("NFD", "café/menu.txt"),
    "NOTE.TXT",
    "",
    "a\x00b",
    "x/" * 3000,
    "rw/" + "y" * 300,
    "/proc/self/environ",
]


def build_tree(root: Path) -> None:
    granted = root / "granted"
    (granted / "rw" / "x.txt").write_text("rw file")
    (granted / "link").symlink_to(root / "secret.txt")
    (granted / "dirlink").symlink_to(root)
    (granted / "devlink").symlink_to("/dev/zero")
    os.mkfifo(granted / "fifo")
    cafe = granted / unicodedata.normalize("NFC", "café")
    cafe.mkdir()
    (cafe / "menu.txt").write_text("menu")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_escape_through_the_syscall_path(
    tmp_path: Path, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with anyio.fail_after(30):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            build_tree(rig.root)
            monkeypatch.setenv("HOME", str(rig.root))  # "~" is outside the grant
            _, alpha = await rig.agent("alpha")
            for path, content in ALLOWED:
                assert await alpha.call("proc.test_read", path=path) == content, path
            escaped, errors = [], []
            for path in ESCAPES:
                try:
                    got = await alpha.call("proc.test_read", path=path)
                except PermissionDenied as exc:
                    errors.append(exc.message)
                else:
                    escaped.append((path[:40], got[:20]))
            assert escaped == []
            assert all(message for message in errors)
            rows = [r for r in rig.kernel.audit_rows(limit=1000) if r["syscall"] == "proc.test_read"]
    # Each escape is denied at the check, or refused by the confined open after it; both are audited.
    assert sum(r["decision"] == "deny" for r in rows) == len(ESCAPES)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_writes_only_inside_the_write_grant(tmp_path: Path, transport: str) -> None:
    with anyio.fail_after(30):
        async with open_rig(tmp_path, transport) as rig:  # type: ignore[arg-type]
            _, alpha = await rig.agent("alpha")
            granted = rig.root / "granted"
            ok = await alpha.call("proc.test_touch", kind="file", target=str(granted / "rw" / "new.txt"), write=True)
            assert ok["touched"].endswith("new.txt")
            assert await alpha.call("proc.test_touch", kind="file", target=str(granted / "note.txt"))
            for target in (granted / "note.txt", granted / "rw" / ".." / "x", rig.root / "secret.txt", "rw2/x"):
                with pytest.raises(PermissionDenied):
                    await alpha.call("proc.test_touch", kind="file", target=str(target), write=True)
            _, beta = await rig.agent("beta")  # no file grants at all
            with pytest.raises(PermissionDenied, match="no file access"):
                await beta.call("proc.test_read", path=str(granted / "note.txt"))


async def test_a_symlink_swapped_in_after_the_check_never_leads_out(tmp_path: Path) -> None:
    with anyio.fail_after(60):
        async with open_rig(tmp_path) as rig:
            granted = rig.root / "granted"
            inside = granted / "realdir"
            inside.mkdir()
            (inside / "x.txt").write_text("inside")
            outside = rig.root / "out"
            outside.mkdir()
            (outside / "x.txt").write_text("SECRET")
            flip, parked = granted / "flip", granted / "parked"
            inside.rename(flip)
            stop = threading.Event()

            def flipper() -> None:
                # Alternate "flip" between the real directory and a symlink to the outside, as fast as possible.
                while not stop.is_set():
                    flip.rename(parked)
                    flip.symlink_to(outside)
                    flip.unlink()
                    parked.rename(flip)

            thread = threading.Thread(target=flipper, daemon=True)
            thread.start()
            _, alpha = await rig.agent("alpha")
            seen: dict[str, int] = {}
            try:
                for _ in range(400):
                    try:
                        got = await alpha.call("proc.test_read", path="flip/x.txt")
                    except PermissionDenied:
                        got = "refused"
                    seen[got] = seen.get(got, 0) + 1
            finally:
                stop.set()
                thread.join()
    assert "SECRET" not in seen
    assert seen.get("inside", 0) + seen.get("refused", 0) == 400
