"""Rendering helpers shared by the CLI commands (rich lives here, never in the core)."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["CONTEXT_SETTINGS", "cell", "err", "print_json", "status", "table"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def err(message: str) -> None:
    click.echo(f"Error: {message}", err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def status(message: str) -> Any:
    """A spinner on stderr while something slow runs (stdout stays clean for pipes)."""
    from rich.console import Console

    return Console(stderr=True).status(message, spinner="dots")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("\n", " ")


def table(rows: list[dict[str, Any]], columns: tuple[str, ...], *, empty: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print(empty)
        return
    out = Table(box=None, header_style="bold")
    for column in columns:
        out.add_column(column.upper().replace("_", " "), overflow="ellipsis", no_wrap=column == "goal", max_width=40)
    for row in rows:
        out.add_row(*(cell(row.get(c)) for c in columns))
    console.print(out)
