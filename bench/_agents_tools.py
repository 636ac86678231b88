"""The stdio MCP servers of bench/agents that no reference server covers: a calculator and document readers.

Run: ``python -m bench._agents_tools calc`` or ``python -m bench._agents_tools docs``. Plain, honest tools, as a
user would install: the calculator does arithmetic on numbers; the document reader reads .docx and .csv files
(python-docx, the csv module) and reports a CSV column's statistics.
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)

calc = MCPServer("calc", instructions="Arithmetic on numbers.")
docs = MCPServer("docs", instructions="Read Word (.docx) and CSV documents.")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


@calc.tool(annotations=READ_ONLY)
def add(a: float, b: float) -> str:
    """Add two numbers: a + b."""
    return _num(a + b)


@calc.tool(annotations=READ_ONLY)
def subtract(a: float, b: float) -> str:
    """Subtract b from a: a - b."""
    return _num(a - b)


@calc.tool(annotations=READ_ONLY)
def multiply(a: float, b: float) -> str:
    """Multiply two numbers: a * b (times, product)."""
    return _num(a * b)


@calc.tool(annotations=READ_ONLY)
def divide(a: float, b: float) -> str:
    """Divide a by b: a / b (quotient)."""
    if b == 0:
        raise ToolError("division by zero")
    return _num(a / b)


def _file(path: str, suffix: str) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() != suffix:
        raise ToolError(f"{path} is not a {suffix} file")
    if not p.is_file():
        raise ToolError(f"no such file: {path}")
    return p


@docs.tool(annotations=READ_ONLY)
def read_docx(path: str) -> str:
    """Read the text of a Word document (.docx) at an absolute path, paragraph by paragraph."""
    import docx

    document = docx.Document(str(_file(path, ".docx")))
    return "\n".join(p.text for p in document.paragraphs if p.text.strip())


@docs.tool(annotations=READ_ONLY)
def read_csv(path: str) -> str:
    """Read a CSV file at an absolute path: its header, its rows and how many rows it has."""
    with _file(path, ".csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    lines = [", ".join(header)] + [", ".join(r) for r in body]
    return f"{len(body)} rows\n" + "\n".join(lines)


@docs.tool(annotations=READ_ONLY)
def csv_column_stats(path: str, column: str) -> str:
    """Statistics of one numeric column of a CSV file: count, sum (total), mean (average), min and max."""
    with _file(path, ".csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    names = list(rows[0]) if rows else []
    match = next((n for n in names if n.strip().lower() == column.strip().lower()), None)
    if match is None:
        raise ToolError(f"no column {column!r} (columns: {', '.join(names)})")
    try:
        values = [float(r[match]) for r in rows if r[match].strip()]
    except ValueError as exc:
        raise ToolError(f"column {match!r} is not numeric") from exc
    return (
        f"count={len(values)} sum={_num(sum(values))} mean={_num(statistics.fmean(values))} "
        f"min={_num(min(values))} max={_num(max(values))}"
    )


if __name__ == "__main__":
    {"calc": calc, "docs": docs}[sys.argv[1]].run()
