"""Every command's ``-h`` output, snapshot-tested: a changed option, default or example shows up in review.

Update on purpose with ``pytest tests/unit/test_cli_help.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from aios.cli import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name in sorted(group.commands):
        command = group.commands[name]
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


COMMANDS = [(), *_commands(cli)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "aios")
def test_help(path: tuple[str, ...], snapshot: object) -> None:
    result = CliRunner().invoke(cli, [*path, "-h"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert result.output == snapshot


def test_every_command_has_an_example_or_is_a_group() -> None:
    """House style: a short example in each command's help (groups list their commands instead)."""
    missing = []
    for path in COMMANDS[1:]:
        command: click.Command = cli
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        if not isinstance(command, click.Group) and "xample" not in (command.help or ""):
            missing.append(" ".join(path))
    assert missing == [], missing
