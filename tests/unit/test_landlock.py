"""aios.landlock against the running kernel: the ABI probe, a ruleset that confines, the seccomp filter.

Each confinement is irrevocable, so it runs in a child interpreter; the child first does the same thing
unconfined, so each refusal is shown to come from the rule and not from the file or the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aios import landlock

needs_landlock = pytest.mark.skipif(landlock.abi_version() < 1, reason="Landlock is not available here")


def run_child(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_confinement_level_says_what_the_abi_enforces() -> None:
    assert landlock.confinement_level(0).startswith("none: Landlock is not available")
    assert landlock.confinement_level(3) == "Landlock ABI 3: files"
    assert "TCP" in landlock.confinement_level(4) and "scoped" not in landlock.confinement_level(5)
    assert "signals and abstract sockets scoped" in landlock.confinement_level(7)


def test_missing_landlock_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(landlock, "abi_version", lambda: 0)
    with pytest.raises(landlock.LandlockUnavailable, match="not available"):
        landlock.restrict_self(landlock.Rules())


@needs_landlock
def test_ruleset_allows_its_grants_and_nothing_else(tmp_path: Path) -> None:
    granted, writable, outside = tmp_path / "granted", tmp_path / "scratch", tmp_path / "outside"
    for folder in (granted, writable, outside):
        folder.mkdir()
        (folder / "f.txt").write_text("x")
    code = f"""
import json, sys
from aios import landlock
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return exc.__class__.__name__
def read(p): open(p).read()
def write(p): open(p, "a").write("y")
before = {{"outside": attempt(lambda: read({str(outside / "f.txt")!r}))}}
abi = landlock.restrict_self(landlock.Rules(
    read=({str(granted)!r}, sys.base_prefix, sys.prefix), write=({str(writable)!r},)))
print(json.dumps({{
    "abi": abi,
    "before": before,
    "read_granted": attempt(lambda: read({str(granted / "f.txt")!r})),
    "write_granted": attempt(lambda: write({str(granted / "f.txt")!r})),
    "write_scratch": attempt(lambda: write({str(writable / "f.txt")!r})),
    "read_outside": attempt(lambda: read({str(outside / "f.txt")!r})),
    "write_outside": attempt(lambda: write({str(outside / "new.txt")!r})),
}}))
"""
    out = run_child(code)
    assert out["abi"] == landlock.abi_version()
    assert out["before"] == {"outside": "ok"}
    assert out["read_granted"] == "ok" and out["write_scratch"] == "ok"
    assert out["write_granted"] == "PermissionError"
    assert out["read_outside"] == "PermissionError" and out["write_outside"] == "PermissionError"
    assert not (outside / "new.txt").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_seccomp_filter_refuses_datagrams_and_forks_but_not_threads() -> None:
    code = """
import json, os, socket, threading
from aios import landlock
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as exc:
        return exc.errno
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
before = {"udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()), "fork": attempt(fork)}
landlock.restrict_syscalls(processes=True, datagrams=True)
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
print(json.dumps({
    "before": before,
    "udp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()),
    "udp6": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK).close()),
    "tcp": attempt(lambda: socket.socket().close()),
    "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()),
    "fork": attempt(fork),
}))
"""
    out = run_child(code)
    assert out["before"] == {"udp": "ok", "fork": "ok"}
    assert out["udp"] == 13 and out["udp6"] == 13  # EACCES
    assert out["tcp"] == "ok" and out["unix"] == "ok"
    assert out["fork"] == 11  # EAGAIN
