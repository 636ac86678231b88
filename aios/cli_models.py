"""`aios models list|add|default|remove`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from aios._cli_util import CONTEXT_SETTINGS, print_json, table
from aios.models import ModelRegistry

__all__ = ["models_group"]


@click.group("models", context_settings=CONTEXT_SETTINGS)
def models_group() -> None:
    """Manage the models the kernel can run (the bundled SmolLM2 is always there)."""


@models_group.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_models(as_json: bool) -> None:
    """List registered models; the default is marked.

    \b
    Example:
      aios models list --json
    """
    registry = ModelRegistry()
    default = registry.default_name()
    rows = [{**asdict(m), "default": m.name == default} for m in registry.list()]
    if as_json:
        print_json({"default": default, "models": rows})
        return
    for row in rows:
        row["name"] = ("* " if row["default"] else "  ") + row["name"]
    table(rows, ("name", "backend", "path"), empty="no models")


@models_group.command("add", context_settings=CONTEXT_SETTINGS)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--name", help="Name to use (default: the file name without .gguf).")
@click.option("--default", "make_default", is_flag=True, help="Also make it the default model.")
def add(path: Path, name: str | None, make_default: bool) -> None:
    """Register a local GGUF model file.

    \b
    Example:
      aios models add ~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf --name qwen0.5b --default
    """
    registry = ModelRegistry()
    info = registry.add(path, name)
    if make_default:
        registry.set_default(info.name)
    click.echo(f"added {info.name}: {info.path}" + (" (default)" if make_default else ""))


@models_group.command("default", context_settings=CONTEXT_SETTINGS)
@click.argument("name", required=False)
def default(name: str | None) -> None:
    """Show the default model, or set it to NAME.

    \b
    Examples:
      aios models default
      aios models default qwen0.5b
    """
    registry = ModelRegistry()
    if name is None:
        click.echo(registry.default_name())
        return
    registry.set_default(name)
    click.echo(f"default model: {name}")


@models_group.command("remove", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
def remove(name: str) -> None:
    """Unregister a model (the file itself is left alone).

    \b
    Example:
      aios models remove qwen0.5b
    """
    ModelRegistry().remove(name)
    click.echo(f"removed {name}")
