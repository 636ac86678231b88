"""`aios serve`, `aios policy`, `aios audit`, `aios approvals`/`approve`, and process control
(`aios kill|suspend|resume|nice PID`) sent to the running daemon."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from aios._cli_util import CONTEXT_SETTINGS, err, print_json, table
from aios.api import PRIORITIES
from aios.errors import AiosError, UsageError

__all__ = ["ANSWER_KEYS", "access_commands", "prompt_approvals"]

log = logging.getLogger(__name__)

ANSWER_KEYS = {"o": "allow_once", "a": "allow_always", "d": "deny", "n": "deny_always"}


def _daemon() -> Any:
    from aios.client import daemon_client

    return daemon_client()


def _need_daemon() -> Any:
    client = _daemon()
    if client is None:
        raise AiosError("no kernel is running", "start one with `aios serve` (in another terminal)")
    return client


# -- serve -------------------------------------------------------------------------------------------


@click.command("serve", context_settings=CONTEXT_SETTINGS)
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), help="Socket path (default: runtime dir).")
@click.option(
    "--prompt/--no-prompt",
    default=False,
    help="Ask approvals on this terminal (off by default: a background job must not read it).",
)
def serve(socket_path: str | None, prompt: bool) -> None:
    """Run the kernel headless on a Unix socket (mode 0600) until Ctrl+C or SIGTERM.

    Front ends (`aios ps`, `aios kill`, a second TUI) and out-of-process agents connect to it with a
    token; the front-end token is written next to the socket, readable only by you.

    Approvals are answered by `aios approvals watch` in any terminal (or here, with --prompt); with no
    front end attached they are denied after `[access] headless_timeout_s`.

    \b
    Examples:
      aios serve &
      aios ps
      aios serve --prompt
    """
    from pathlib import Path

    from aios._cli_util import status
    from kernel.launch import serve_daemon

    ask = prompt and sys.stdin.isatty()
    serve_daemon(
        Path(socket_path) if socket_path else None,
        announce=lambda line: click.echo(line, err=True),
        approver=prompt_approvals if ask else None,
        loading=status,
    )


# -- approvals ---------------------------------------------------------------------------------------


def _ask_terminal(event: Any) -> str:
    click.echo(
        f"\napproval needed: pid {event.pid} ({event.agent}) {event.syscall} -> {event.resource}\n  {event.reason}",
        err=True,
    )
    key = click.prompt(
        "  [o]nce, [a]lways for this agent, [d]eny, [n]ever",
        type=click.Choice(list(ANSWER_KEYS)),
        show_choices=False,
        err=True,
    )
    return ANSWER_KEYS[key]


def _fill_terminal(event: Any) -> tuple[str, dict[str, Any] | None]:
    """An MCP server's form (elicitation): ask each field on the terminal, then submit, decline or cancel."""
    click.echo(f"\nMCP server {event.resource.removeprefix('mcp:')} asks: {event.reason}", err=True)
    choice = click.prompt(
        "  [f]ill in, [d]ecline, [c]ancel", type=click.Choice(["f", "d", "c"]), show_choices=False, err=True
    )
    if choice != "f":
        return ("decline" if choice == "d" else "cancel"), None
    types = {"integer": int, "number": float, "boolean": bool}
    required = set(event.form.get("required") or ())
    content: dict[str, Any] = {}
    for name, prop in (event.form.get("properties") or {}).items():
        kind = click.Choice([str(v) for v in prop["enum"]]) if "enum" in prop else types.get(prop.get("type"), str)
        value = click.prompt(
            f"  {prop.get('title') or name}",
            type=kind,
            default=prop.get("default", None if name in required else ""),
            show_default=False,
            err=True,
        )
        if value != "" or name in required:
            content[name] = value
    return "accept", content


async def prompt_approvals(
    client: Any,
    *,
    ask: Callable[[Any], str] = _ask_terminal,
    count: int | None = None,
    by: str = "cli",
    fill: Callable[[Any], tuple[str, dict[str, Any] | None]] = _fill_terminal,
) -> None:
    """Answer approval requests from ``client`` (a KernelClient) by asking on the terminal."""
    import anyio

    from kernel.events import ApprovalRequested

    answered = 0
    with client.subscribe(approver=True) as events:
        async for event in events:
            if not isinstance(event, ApprovalRequested):
                continue
            content = None
            if getattr(event, "form", None) is not None:  # an MCP server's form
                answer, content = await anyio.to_thread.run_sync(fill, event, abandon_on_cancel=True)
            else:
                answer = await anyio.to_thread.run_sync(ask, event, abandon_on_cancel=True)
            try:
                if content is not None:
                    await client.approve(event.request_id, answer, by=by, content=content)
                else:
                    await client.approve(event.request_id, answer, by=by)
            except UsageError as exc:  # timed out or answered elsewhere meanwhile
                err(exc.one_line())
            answered += 1
            if count is not None and answered >= count:
                return


@click.group("approvals", invoke_without_command=True, context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def approvals_group(ctx: click.Context, as_json: bool) -> None:
    """List approval requests waiting in the running kernel (`approvals watch` answers them).

    \b
    Examples:
      aios approvals
      aios approvals watch
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = _need_daemon().approvals()
    if as_json:
        print_json({"approvals": rows})
    else:
        table(rows, ("id", "pid", "agent", "syscall", "resource", "reason"), empty="no approvals waiting")


@approvals_group.command("watch", context_settings=CONTEXT_SETTINGS)
@click.option("-n", "--count", type=click.IntRange(min=1), help="Exit after answering this many.")
def approvals_watch(count: int | None) -> None:
    """Ask on this terminal for every approval the running kernel needs.

    \b
    Example:
      aios approvals watch
    """
    import anyio

    from aios.client import SocketClient

    _need_daemon().close()

    async def main() -> None:
        async with SocketClient() as client:
            await prompt_approvals(client, count=count)

    anyio.run(main)


@click.command("approve", context_settings=CONTEXT_SETTINGS)
@click.argument("request_id")
@click.argument("answer", type=click.Choice(["allow_once", "allow_always", "deny", "deny_always"]))
def approve(request_id: str, answer: str) -> None:
    """Answer one pending approval (ids from `aios approvals`).

    \b
    Example:
      aios approve 3f2a9c1b0d4e allow_once
    """
    _need_daemon().request("POST", "/v1/approve", {"id": request_id, "answer": answer, "by": "cli"})
    click.echo(f"{request_id}: {answer}")


# -- policy ------------------------------------------------------------------------------------------


@click.group("policy", context_settings=CONTEXT_SETTINGS)
def policy_group() -> None:
    """The "always allow / always deny" answers you gave to approval requests."""


@policy_group.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--agent", help="Only this agent's rules.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def policy_list(agent: str | None, as_json: bool) -> None:
    """List remembered decisions.

    \b
    Examples:
      aios policy list
      aios policy list --agent chat --json
    """
    from kernel.launch import policy_rules

    rows = policy_rules(agent)
    if as_json:
        print_json({"rules": rows})
    else:
        table(rows, ("id", "agent", "resource", "decision", "syscall"), empty="no remembered decisions")


@policy_group.command("revoke", context_settings=CONTEXT_SETTINGS)
@click.argument("rule_id", type=int)
def policy_revoke(rule_id: int) -> None:
    """Forget one remembered decision; the agent is asked again next time.

    \b
    Example:
      aios policy revoke 3
    """
    from kernel.launch import policy_revoke

    rule = policy_revoke(rule_id)
    click.echo(f"revoked {rule['id']}: always {rule['decision']} {rule['resource']} for {rule['agent']}")


# -- audit -------------------------------------------------------------------------------------------


@click.command("audit", context_settings=CONTEXT_SETTINGS)
@click.option("--agent", help="Only this agent's rows.")
@click.option("--denied", is_flag=True, help="Only refusals.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most recent N rows.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit(agent: str | None, denied: bool, limit: int, as_json: bool) -> None:
    """Show the audit log: who (pid, agent, token) made which syscall on what, and the decision.

    \b
    Examples:
      aios audit --denied
      aios audit --agent chat --json | jq '.rows[] | .resource'
    """
    from kernel.launch import audit_rows

    rows = audit_rows(agent=agent, denied=denied, limit=limit)
    if as_json:
        print_json({"rows": rows})
        return
    import time

    for row in rows:
        row["time"] = time.strftime("%H:%M:%S", time.localtime(row["ts"]))
    columns = ("time", "pid", "agent", "token_id", "syscall", "resource", "decision", "reason")
    table(rows, columns, empty="no audit rows")


# -- process control through the daemon --------------------------------------------------------------


def _control(what: str, pid: int, **extra: Any) -> None:
    _need_daemon().request("POST", f"/v1/{what}", {"pid": pid, **extra})


@click.command("kill", context_settings=CONTEXT_SETTINGS)
@click.argument("pid", type=int)
def kill(pid: int) -> None:
    """Stop a process in the running kernel.

    \b
    Example:
      aios kill 3
    """
    _control("kill", pid)


@click.command("suspend", context_settings=CONTEXT_SETTINGS)
@click.argument("pid", type=int)
def suspend(pid: int) -> None:
    """Pause a process's LLM work (its context is swapped out first).

    \b
    Example:
      aios suspend 3
    """
    _control("suspend", pid)


@click.command("resume", context_settings=CONTEXT_SETTINGS)
@click.argument("pid", type=int)
def resume(pid: int) -> None:
    """Resume a suspended process.

    \b
    Example:
      aios resume 3
    """
    _control("resume", pid)


@click.command("nice", context_settings=CONTEXT_SETTINGS)
@click.argument("pid", type=int)
@click.argument("priority", type=click.Choice(PRIORITIES))
def nice(pid: int, priority: str) -> None:
    """Change a process's priority class (capped by its manifest).

    \b
    Example:
      aios nice 3 background
    """
    _control("nice", pid, priority=priority)


def access_commands() -> list[click.Command]:
    return [serve, approvals_group, approve, policy_group, audit, kill, suspend, resume, nice]
