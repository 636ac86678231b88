"""Structure-aware chunking: Markdown by headings and paragraphs (fenced code kept whole), code by top-level
definitions, prose by paragraphs; each chunk packed up to ~``MAX_WORDS`` words and tagged with its lines."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

__all__ = ["MAX_WORDS", "Chunk", "chunk_text"]

MAX_WORDS = 180
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_DEF = re.compile(
    r"^(async\s+def|def|class|function|func|fn|pub\s|impl|struct|enum|interface|type|export|const|let|var|"
    r"public|private|protected|static|module|package|@)\b"
)


@dataclass(frozen=True)
class Chunk:
    heading: str
    text: str
    start_line: int  # 1-based, inclusive
    end_line: int

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.heading}\x00{self.text}".encode()).hexdigest()


@dataclass
class _Block:
    lines: list[str]
    start: int  # 0-based index of the first line
    heading: str

    @property
    def words(self) -> int:
        return sum(len(line.split()) for line in self.lines)


def _markdown_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    trail: list[str] = []
    current: _Block | None = None
    in_fence = False

    def close() -> None:
        nonlocal current
        if current is not None and any(line.strip() for line in current.lines):
            blocks.append(current)
        current = None

    for i, line in enumerate(lines):
        if _FENCE.match(line):
            if not in_fence:
                close()
            in_fence = not in_fence
        if not in_fence:
            match = _HEADING.match(line)
            if match:
                close()
                level = len(match.group(1))
                trail[:] = [*trail[: level - 1], match.group(2)]
                current = _Block([line], i, " > ".join(trail))
                continue
            if not line.strip() and current is not None and not _FENCE.match(line):
                close()
                continue
        if current is None:
            current = _Block([], i, " > ".join(trail))
        current.lines.append(line)
    close()
    return blocks


def _code_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    current = _Block([], 0, "")
    for i, line in enumerate(lines):
        if _CODE_DEF.match(line) and any(x.strip() for x in current.lines):
            # Comments and decorators just above a definition belong to it.
            carry: list[str] = []
            while current.lines and current.lines[-1].strip().startswith(("#", "//", "@", "/*", "*")):
                carry.insert(0, current.lines.pop())
            if any(x.strip() for x in current.lines):
                blocks.append(current)
            current = _Block([*carry, line], i - len(carry), line.strip()[:80])
            continue
        if _CODE_DEF.match(line) and not current.heading:
            current.heading = line.strip()[:80]
        current.lines.append(line)
    if any(x.strip() for x in current.lines):
        blocks.append(current)
    return blocks


def _prose_blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    for i, line in enumerate(lines):
        if not line.strip():
            if current is not None:
                blocks.append(current)
                current = None
            continue
        if current is None:
            current = _Block([], i, "")
        current.lines.append(line)
    if current is not None:
        blocks.append(current)
    return blocks


def _split_long(block: _Block, max_words: int) -> list[_Block]:
    """A block over the cap is cut into windows of whole lines (or of words, for one huge line)."""
    if block.words <= max_words:
        return [block]
    out: list[_Block] = []
    current = _Block([], block.start, block.heading)
    count = 0
    for offset, line in enumerate(block.lines):
        words = line.split()
        if len(words) > max_words:
            if current.lines:
                out.append(current)
            for w in range(0, len(words), max_words):
                out.append(_Block([" ".join(words[w : w + max_words])], block.start + offset, block.heading))
            current, count = _Block([], block.start + offset + 1, block.heading), 0
            continue
        if count + len(words) > max_words and current.lines:
            out.append(current)
            current, count = _Block([], block.start + offset, block.heading), 0
        current.lines.append(line)
        count += len(words)
    if current.lines:
        out.append(current)
    return out


def _pack(blocks: list[_Block], max_words: int) -> list[_Block]:
    """Merge small neighbouring blocks of the same section up to the cap."""
    packed: list[_Block] = []
    for block in (piece for b in blocks for piece in _split_long(b, max_words)):
        last = packed[-1] if packed else None
        if last is not None and last.heading == block.heading and last.words + block.words <= max_words:
            gap = block.start - (last.start + len(last.lines))
            last.lines.extend([""] * max(gap, 0) + block.lines)
        else:
            packed.append(_Block(list(block.lines), block.start, block.heading))
    return packed


def chunk_text(text: str, kind: str, *, max_words: int = MAX_WORDS) -> list[Chunk]:
    lines = text.split("\n")
    if kind in ("markdown", "docx"):
        blocks = _markdown_blocks(lines)
    elif kind == "code":
        blocks = _code_blocks(lines)
    else:
        blocks = _prose_blocks(lines)
    chunks = []
    for block in _pack(blocks, max_words):
        body = "\n".join(block.lines).strip("\n")
        if body.strip():
            chunks.append(Chunk(block.heading, body, block.start + 1, block.start + len(block.lines)))
    return chunks
