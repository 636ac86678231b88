"""The `aios` command. A thin front end: it renders, and leaves the work to the kernel and the stores.

`aios` with no arguments opens the TUI. Errors are one line on stderr: exit code 2 for bad usage, 1 for a
failed operation; `--debug` shows tracebacks.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from aios import __version__, paths
from aios._cli_util import CONTEXT_SETTINGS, cell, err, print_json, status, table
from aios.api import PRIORITIES
from aios.errors import AiosError

__all__ = ["cli", "main"]

log = logging.getLogger("aios")


#: Commands that must work with a broken config.toml: they are how one finds and fixes it.
_WITHOUT_CONFIG = frozenset({"doctor", "paths", "config"})


class AiosGroup(click.Group):
    """Turns AiosError into one clear line and the right exit code; runs every command under umask 077."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["aios.args"] = tuple(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from aios.filemodes import private_umask

        try:
            with private_umask():  # whatever a command creates (store, tokens, logs) is the user's alone
                return super().invoke(ctx)
        except AiosError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err(exc.one_line())
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            err(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")
            ctx.exit(1)


@click.group(cls=AiosGroup, invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, "-V", "--version")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """aios: many agents, one local LLM, in your terminal.

    Run `aios` alone to open the TUI.

    \b
    Examples:
      aios run chat "What is a context switch?"
      aios ps --json
      aios doctor
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    asks_help = bool({"-h", "--help"} & set(ctx.meta.get("aios.args", ())))
    if ctx.invoked_subcommand not in _WITHOUT_CONFIG and not asks_help:
        from aios.config import load_config

        load_config()  # a broken config.toml stops every command here, with one line and exit 2
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


@cli.command(context_settings=CONTEXT_SETTINGS)
def tui() -> None:
    """Open the terminal UI (the default when `aios` has no arguments).

    \b
    Example:
      aios tui
    """
    from aios.client import daemon_client
    from aios.config import load_config
    from kernel.launch import load_model
    from tui.app import make_app

    config = load_config()
    daemon = daemon_client()  # a running `aios serve` has the model loaded: the TUI connects to it
    if daemon is not None:
        daemon.close()
        runtime = None
    else:
        runtime = load_model(config, loading=status)
    make_app(config=config, runtime=runtime).run()


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.argument("agent")
@click.argument("goal", nargs=-1, required=True)
@click.option("--priority", type=click.Choice(PRIORITIES), help="Scheduling class.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished process as JSON instead of streaming.")
@click.option("--unconfined", is_flag=True, help="Run a plugin agent without Landlock (only one you trust).")
@click.option(
    "--allow",
    "allow_write",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, resolve_path=True),
    help="Let the agent read and write this folder for this run (repeatable; within [access.user]; audited).",
)
@click.option(
    "--allow-read",
    "allow_read",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, resolve_path=True),
    help="Let the agent read this folder for this run (repeatable).",
)
def run(
    agent: str,
    goal: tuple[str, ...],
    priority: str | None,
    as_json: bool,
    unconfined: bool,
    allow_write: tuple[str, ...],
    allow_read: tuple[str, ...],
) -> None:
    """Run AGENT on GOAL and stream its output to stdout.

    \b
    Examples:
      aios run chat "Name three uses of a process table"
      aios run chat "Summarise this:" "$(cat notes.txt)" > answer.txt
      aios run planner "How many rows in sales.csv?" --allow-read ~/data
    """
    from aios._cli_run import run_agent

    stream = None if as_json else _stream_out
    info = run_agent(
        agent,
        " ".join(goal),
        priority=priority,
        stream=stream,
        status=status,
        unconfined=unconfined,
        allow_read=allow_read,
        allow_write=allow_write,
    )
    if as_json:
        print_json(info)
    elif info.get("state") == "failed":
        raise AiosError(f"agent {agent} failed: {info.get('error')}")


def _stream_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("-a", "--all", "include_exited", is_flag=True, help="Include exited and failed processes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ps(include_exited: bool, as_json: bool) -> None:
    """List agent processes.

    \b
    Examples:
      aios ps
      aios ps --all --json
    """
    from kernel.launch import processes

    rows = processes(include_exited=include_exited)  # the running kernel's table, else the last one recorded
    if as_json:
        print_json({"processes": rows})
        return
    columns = ("pid", "ppid", "agent", "state", "priority", "prompt_tokens", "completion_tokens", "ttft_s", "goal")
    table(rows, columns, empty="no processes" + ("" if include_exited else " running (try --all)"))


_TOP_COLUMNS = (
    "pid",
    "agent",
    "state",
    "priority",
    "tok_s",
    "ttft_s",
    "prompt_tokens",
    "completion_tokens",
    "residency",
    "swaps",
    "recomputes",
)


def _top_rows() -> list[dict[str, object]]:
    from kernel.launch import processes

    rows = processes()
    for row in rows:
        tbt = row.get("tbt_s")
        row["tok_s"] = 1.0 / tbt if tbt else None
    return rows


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON snapshot and exit.")
@click.option("-n", "--iterations", type=click.IntRange(min=1), help="Refresh this many times, then exit.")
@click.option(
    "-d", "--delay", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="Seconds between refreshes."
)
def top(as_json: bool, iterations: int | None, delay: float) -> None:
    """Live view of running agents: state, class, tokens/s, TTFT, tokens, and whether each context is
    resident, swapped or dropped.

    \b
    Examples:
      aios top
      aios top --json | jq '.processes[] | {pid, tok_s, residency}'
    """
    if as_json:
        print_json({"processes": _top_rows()})
        return
    import time

    from rich.live import Live
    from rich.table import Table

    def render() -> Table:
        out = Table(box=None, header_style="bold", title="aios top")
        for column in _TOP_COLUMNS:
            out.add_column(column.upper().replace("_", " "))
        for row in _top_rows():
            out.add_row(*(cell(row.get(c)) for c in _TOP_COLUMNS))
        return out

    count = 0
    with Live(render(), auto_refresh=False) as live:
        while iterations is None or count < iterations:
            time.sleep(delay if count else 0)
            live.update(render(), refresh=True)
            count += 1


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def doctor(as_json: bool) -> None:
    """Check the model, the stores and the embedding files; say what is wrong, one line each.

    \b
    Example:
      aios doctor
    """
    from aios.doctor import run_checks

    checks = run_checks()
    if as_json:
        print_json({"ok": all(c.ok for c in checks), "checks": [c.__dict__ for c in checks]})
    else:
        for check in checks:
            mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red", bold=True)
            click.echo(f"{mark} {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@cli.command(context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agents(as_json: bool) -> None:
    """List the agents that plugins provide.

    \b
    Example:
      aios agents
    """
    from aios.plugin_manager import PluginManager

    manager = PluginManager()
    rows = [
        {"name": name, "description": cls.manifest.description, "interactive": cls.manifest.interactive}
        for name, cls in sorted(manager.agents().items())
    ]
    if as_json:
        print_json({"agents": rows})
    else:
        table(rows, ("name", "description"), empty="no agents")
    for failure in manager.failures:
        err(f"plugin {failure.source}: {failure.error}")


@cli.command("paths", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_paths(as_json: bool) -> None:
    """Show where aios keeps its data and configuration (AIOS_HOME overrides all).

    \b
    Example:
      aios paths
    """
    found = {
        "config": paths.config_path(),
        "models": paths.models_path(),
        "plugins": paths.plugins_dir(),
        "data": paths.data_dir(),
        "db": paths.db_path(),
        "runtime": paths.runtime_dir(),
    }
    if as_json:
        print_json({k: str(v) for k, v in found.items()})
    else:
        for key, value in found.items():
            click.echo(f"{key:8} {value}")


def _register_plugin_commands() -> None:
    from aios.plugin_manager import PluginManager

    try:
        PluginManager().pm.hook.register_commands(cli=cli)
    except Exception as exc:  # a plugin's command must never break the CLI
        log.warning("plugin commands failed to register: %s", exc)


def main(argv: list[str] | None = None, *, prog_name: str = "aios") -> None:
    import sys

    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in args if not a.startswith("-")), None)
    if command is None or command not in cli.commands:
        # Plugins are loaded (every plugin module imported) only when a plugin's command may be what is asked
        # for, or for the help listing: a built-in command starts ~0.15 s sooner without them.
        _register_plugin_commands()
    cli.main(args=argv, prog_name=prog_name)


def _add_groups() -> None:
    from aios.cli_access import access_commands
    from aios.cli_config import config_group
    from aios.cli_fs import fs_group
    from aios.cli_mcp import mcp_group, plan_group
    from aios.cli_mem import mem_group
    from aios.cli_models import models_group
    from aios.cli_plugins import agent_group, plugins_group
    from aios.cli_tasks import tasks_group

    groups = (config_group, models_group, *access_commands(), fs_group, tasks_group, mem_group, mcp_group, plan_group)
    groups += (plugins_group, agent_group)
    for command in groups:
        cli.add_command(command)


_add_groups()
