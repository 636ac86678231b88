"""`aios config show|path`."""

from __future__ import annotations

import click

from aios import paths
from aios._cli_util import CONTEXT_SETTINGS, print_json
from aios.config import dump_toml, load_config

__all__ = ["config_group"]


@click.group("config", context_settings=CONTEXT_SETTINGS)
def config_group() -> None:
    """Show the configuration (config.toml in the config dir)."""


@config_group.command("show", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(as_json: bool) -> None:
    """Print the effective configuration, defaults included, as TOML.

    \b
    Example:
      aios config show > ~/.config/aios/config.toml
    """
    config = load_config()
    if as_json:
        print_json(config.model_dump())
    else:
        click.echo(dump_toml(config), nl=False)


@config_group.command("path", context_settings=CONTEXT_SETTINGS)
def path() -> None:
    """Print the path of config.toml.

    \b
    Example:
      $EDITOR "$(aios config path)"
    """
    click.echo(str(paths.config_path()))
