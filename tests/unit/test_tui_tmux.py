"""`aios` in a real terminal (tmux): the TUI starts, a typed prompt is answered, a tool plan is dispatched from
the Tools mode and finishes, the Agents mode lists the agent; both on its own in-process kernel and attached to
a kernel started by `aios serve` (the header says which). The LLM is the fake backend (config.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

AIOS = [sys.executable, "-m", "aios"]


@pytest.fixture
def home() -> Iterator[Path]:
    """A short AIOS_HOME (the socket path must fit in 108 bytes) with the fake LLM backend."""
    path = Path(tempfile.mkdtemp(prefix="aios-tmux-", dir="/tmp"))
    (path / "config.toml").write_text('[llm]\nbackend = "fake"\n')
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Terminal:
    """One tmux server of our own (``-L``), one window running a command."""

    def __init__(self, home: Path, command: list[str], *, size: tuple[int, int] = (100, 30)) -> None:
        self.server = f"aios-test-{os.getpid()}-{home.name}"
        env = {"AIOS_HOME": str(home), "TERM": "xterm-256color"}
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        line = f"cd {Path(__file__).resolve().parents[2]} && env {exports} {' '.join(command)}"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(size[0]), "-y", str(size[1]), line)

    def tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.server, *args], capture_output=True, text=True, timeout=20)
        return out.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def wait(self, condition: Callable[[str], bool], what: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            shown = self.screen()
            if condition(shown):
                return shown
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")

    def running(self) -> bool:
        return "t" in self.tmux("list-sessions", "-F", "#{session_name}").split()

    def close(self) -> None:
        self.tmux("kill-server")


def drive(term: Terminal, where: str) -> None:
    term.wait(lambda s: where in s, f"the header to say {where!r}")
    term.type("hello from tmux")
    term.keys("Enter")
    term.wait(lambda s: "chat: echo: hello from tmux" in s, "the streamed reply")

    term.keys("F5")  # Tools: the example plan (time.now) is in the editor
    term.wait(lambda s: "time.now" in s and "ready" in s, "the servers and tools")
    term.keys("C-g")
    shown = term.wait(lambda s: "plan done" in s, "the plan to finish")
    assert "1/1 steps" in shown

    term.keys("F1")  # Agents: the chat agent in the table and the tree
    term.wait(lambda s: "waiting_input" in s and "model fake-model" in s, "the agents mode")

    term.keys("C-q")
    deadline = time.monotonic() + 30
    while term.running() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_the_tui_in_a_real_terminal(home: Path) -> None:
    term = Terminal(home, AIOS)
    try:
        drive(term, "in-process")
        # quitting ends the program: the window's command returns and the session goes
        assert not term.running(), term.screen()
    finally:
        term.close()


def test_the_tui_attached_to_aios_serve(home: Path) -> None:
    env = {**os.environ, "AIOS_HOME": str(home)}
    server = subprocess.Popen([*AIOS, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    term: Terminal | None = None
    try:
        deadline = time.monotonic() + 60
        while not (home / "run" / "frontend.token").exists():
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "aios serve did not start"
            time.sleep(0.1)
        term = Terminal(home, AIOS)
        drive(term, "attached to aios serve")
        assert not term.running(), term.screen()
        # The agent ran in the daemon's kernel: it outlives the TUI.
        ps = subprocess.run([*AIOS, "ps"], env=env, capture_output=True, text=True, timeout=60)
        assert "chat" in ps.stdout, ps.stdout + ps.stderr
    finally:
        if term is not None:
            term.close()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
