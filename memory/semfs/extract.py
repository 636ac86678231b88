"""Turning a file's bytes into text: plain text, Markdown and code as-is, PDF (pypdf), DOCX (python-docx)."""

from __future__ import annotations

import io
import logging
import os

__all__ = ["CODE_EXTS", "ExtractError", "Extracted", "extract", "kind_of"]

log = logging.getLogger(__name__)

CODE_EXTS = frozenset(
    ".py .pyi .js .jsx .ts .tsx .go .rs .c .h .cc .cpp .hpp .java .kt .rb .php .sh .bash .zsh .sql .lua .swift "
    ".scala .cs .r .jl .pl .hs .ml .ex .exs .clj .vim .toml .yaml .yml .ini .cfg .json .xml .html .css .scss "
    ".mk .cmake .dockerfile .tf".split()
)
MARKDOWN_EXTS = frozenset({".md", ".markdown", ".mdx", ".rst", ".org"})
TEXT_EXTS = frozenset({".txt", ".text", ".log", ".csv", ".tsv", ".tex", ".adoc", ""})


class ExtractError(Exception):
    """The file cannot be turned into text; ``reason`` is a short word shown to the user."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Extracted:
    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text


def kind_of(relpath: str) -> str:
    """``markdown``, ``code``, ``pdf``, ``docx`` or ``text`` (unknown extensions are tried as text)."""
    name = os.path.basename(relpath).lower()
    ext = os.path.splitext(name)[1]
    if ext in MARKDOWN_EXTS:
        return "markdown"
    if ext == ".pdf":
        return "pdf"
    if ext == ".docx":
        return "docx"
    if ext in CODE_EXTS or name in {"makefile", "dockerfile", "justfile"}:
        return "code"
    return "text"


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ExtractError("binary", "contains NUL bytes")
    for encoding in ("utf-8", "utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8",):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    # Not UTF-8: accept a legacy 8-bit file only if it is mostly printable, else it is undecodable.
    text = data.decode("latin-1")
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    if printable / max(len(text), 1) < 0.95:
        raise ExtractError("undecodable", "not UTF-8 and not printable text")
    return text


def _pdf(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise ExtractError("unreadable", f"not a valid PDF ({exc})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


def _docx(data: bytes) -> str:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractError("unreadable", f"not a valid DOCX ({exc})") from None
    lines: list[str] = []
    for para in document.paragraphs:
        text = para.text.strip()
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        if style.startswith("Heading"):
            level = style.removeprefix("Heading").strip()
            lines.append("#" * (int(level) if level.isdigit() else 1) + " " + text)
        else:
            lines.append(text)
        lines.append("")
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n".join(lines)


def extract(relpath: str, data: bytes) -> Extracted:
    """The text of a file; raises ExtractError (binary, undecodable, unreadable) when there is none."""
    kind = kind_of(relpath)
    if kind == "pdf":
        return Extracted("pdf", _pdf(data))
    if kind == "docx":
        return Extracted("docx", _docx(data))
    text = _decode(data)
    if text.startswith("\ufeff"):
        text = text[1:]
    return Extracted(kind, text.replace("\r\n", "\n"))
