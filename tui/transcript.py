"""Per-process conversation text, built from kernel events and buffered until the screen next refreshes.

Kept apart from the widgets so the app can write streamed tokens to the console in batches (~30 fps) and
switch the console between processes by replaying one process's text.
"""

from __future__ import annotations

__all__ = ["Transcripts"]


class Transcripts:
    """Text of every process's conversation. ``pending`` holds what arrived since the last ``flush``."""

    def __init__(self) -> None:
        self._committed: dict[int, list[str]] = {}
        self._pending: dict[int, list[str]] = {}
        self._agents: dict[int, str] = {}
        #: Processes whose reply is being streamed (the agent prefix has been written).
        self._replying: set[int] = set()

    # -- from kernel events ------------------------------------------------------------------------

    def started(self, pid: int, agent: str, goal: str = "") -> None:
        self._agents[pid] = agent
        self._committed.setdefault(pid, [])
        if goal:
            self.user(pid, goal)

    def user(self, pid: int, text: str) -> None:
        self._end_reply(pid)
        self._emit(pid, f"you: {text}\n")

    def output(self, pid: int, text: str) -> None:
        if pid not in self._replying:
            text = text.lstrip()
            if not text:
                return
            self._replying.add(pid)
            self._emit(pid, f"{self._agents.get(pid, f'pid {pid}')}: ")
        self._emit(pid, text)

    def turn_ended(self, pid: int) -> None:
        if self._end_reply(pid):
            self._emit(pid, "\n")

    def exited(self, pid: int, state: str, exit_code: int, error: str | None) -> None:
        self._end_reply(pid)
        detail = f", {error}" if error else ""
        self._emit(pid, f"[{state}: exit code {exit_code}{detail}]\n")

    # -- for the screen ----------------------------------------------------------------------------

    def flush(self) -> dict[int, str]:
        """Move pending text into the transcripts and return it, per pid."""
        flushed: dict[int, str] = {}
        for pid, chunks in self._pending.items():
            text = "".join(chunks)
            self._committed.setdefault(pid, []).append(text)
            flushed[pid] = text
        self._pending.clear()
        return flushed

    def text(self, pid: int) -> str:
        """Everything flushed so far for ``pid``."""
        return "".join(self._committed.get(pid, ()))

    # -- internals ---------------------------------------------------------------------------------

    def _emit(self, pid: int, text: str) -> None:
        self._pending.setdefault(pid, []).append(text)

    def _end_reply(self, pid: int) -> bool:
        if pid in self._replying:
            self._replying.discard(pid)
            self._emit(pid, "\n")
            return True
        return False
