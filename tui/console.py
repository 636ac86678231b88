"""The agent console: a Log that word-wraps streamed text to its width.

``Log`` appends to its last line, which streamed tokens need, but it does not wrap; this widget breaks lines
itself as text arrives and re-wraps everything it shows when its width changes.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from textual import events
from textual.widgets import Log

from kernel.events import KernelEvent, ToolCallFinished, ToolCallStarted, ToolProgressed

__all__ = ["AgentConsole", "tool_status"]

_PIECES = re.compile(r"\n| +|[^ \n]+")


def tool_status(event: KernelEvent) -> str | None:
    """The console's one-line status for a tool event (shown under the console): ``""`` clears it once the
    call has ended, None for events that are not about tools."""
    match event:
        case ToolCallStarted(tool=tool):
            return f"⚙ {tool} …"
        case ToolProgressed(tool=tool, progress=done, total=total, message=message):
            amount = f"{done:g}/{total:g}" if total else f"{done:g}"
            return f"⚙ {tool} {amount}" + (f" · {message}" if message else "")
        case ToolCallFinished():
            return ""
    return None


class AgentConsole(Log):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(highlight=False, id=id)
        self._raw: list[str] = []
        self._column = 0
        self._mid_word = False
        self._wrapped_at = 0

    @property
    def text(self) -> str:
        """Everything shown, unwrapped."""
        return "".join(self._raw)

    def show(self, text: str) -> None:
        """Replace the content with ``text``."""
        self._raw.clear()
        self._column, self._mid_word = 0, False
        self.clear()
        self.append(text)

    def append(self, text: str) -> None:
        if text:
            self._raw.append(text)
            self.write(self._wrap(text))

    def on_resize(self, event: events.Resize) -> None:
        if self._wrap_width != self._wrapped_at:
            self.show(self.text)

    @property
    def _wrap_width(self) -> int:
        return self.scrollable_content_region.width

    def _wrap(self, text: str) -> str:
        """Insert line breaks so no line passes the width. The column, and whether the last piece ended
        mid-word, carry over between calls: a token that continues a word cannot move the word's start, so
        it is broken hard where it overflows, as a terminal would."""
        width = self._wrapped_at = self._wrap_width
        if width <= 0:  # not laid out yet: on_resize wraps it
            return text
        out: list[str] = []
        column, mid_word = self._column, self._mid_word
        for piece in _PIECES.findall(text):
            size = cell_len(piece)
            if piece == "\n":
                out.append(piece)
                column, mid_word = 0, False
            elif piece[0] == " ":
                if column + size > width:  # spaces at a line break are dropped
                    out.append("\n")
                    column = 0
                else:
                    out.append(piece)
                    column += size
                mid_word = False
            else:
                if column and not mid_word and column + size > width:
                    out.append("\n")
                    column = 0
                for char in piece:  # a word longer than the line, or one continued past it
                    char_size = cell_len(char)
                    if column and column + char_size > width:
                        out.append("\n")
                        column = 0
                    out.append(char)
                    column += char_size
                mid_word = True
        self._column, self._mid_word = column, mid_word
        return "".join(out)
