"""`aios mcp add|list|remove|test|tools|call|serve|token` and `aios plan run`.

`test`, `tools`, `call` and `plan run` are syscalls by the user through the one door (``tool.*``; a plan run is a
kernel process): checked, accounted, audited. With `--mcp-config FILE` (or servers named in a plan file) they
start that file's servers in the command itself, to try them before adding them (``kernel.launch``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from aios import paths
from aios._cli_util import CONTEXT_SETTINGS, print_json, status, table
from aios.errors import ConfigError, UsageError

__all__ = ["mcp_group", "plan_group"]


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@click.group("mcp", context_settings=CONTEXT_SETTINGS)
def mcp_group() -> None:
    """MCP tool servers: configure them (mcp.json, Claude Desktop format), test them, serve aios over MCP."""


@mcp_group.command("add", context_settings=CONTEXT_SETTINGS)
@click.argument("name", required=False)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--url", help="A streamable-HTTP server instead of a command.")
@click.option("--env", "envs", multiple=True, metavar="KEY=VALUE", help="Environment for the server (repeatable).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE", help="HTTP header (repeatable).")
@click.option("--timeout", type=float, help="Seconds a call may go without result or progress.")
@click.option("--allow", "allowed", multiple=True, metavar="GLOB", help="Only these tools (repeatable).")
@click.option("--deny", "denied", multiple=True, metavar="GLOB", help="Never these tools (repeatable).")
@click.option("--autostart", is_flag=True, help="Start at kernel boot instead of on first use.")
@click.option("--egress", is_flag=True, help="Its tools reach the network (agents need network capability).")
@click.option(
    "--from",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Import servers from a Claude Desktop / Cursor config file (all, or just NAME).",
)
def add(
    name: str | None,
    command: tuple[str, ...],
    url: str | None,
    envs: tuple[str, ...],
    headers: tuple[str, ...],
    timeout: float | None,
    allowed: tuple[str, ...],
    denied: tuple[str, ...],
    autostart: bool,
    egress: bool,
    from_file: Path | None,
) -> None:
    """Add a server to mcp.json (values like ${env:TOKEN} are expanded when it starts).

    \b
    Examples:
      aios mcp add git -- uvx mcp-server-git --repository ~/src/aios
      aios mcp add docs --url https://example.com/mcp --header 'Authorization=Bearer ${env:DOCS_TOKEN}'
      aios mcp add --from ~/.config/Claude/claude_desktop_config.json
    """
    from kernel.launch import mcp_file

    doc = mcp_file.read()
    servers = doc.setdefault("mcpServers", {})
    if from_file is not None:
        try:
            imported = json.loads(from_file.read_text())
        except ValueError as exc:
            raise ConfigError(f"{from_file}: not valid JSON: {exc}") from None
        found = (imported.get("mcpServers") or {}) if isinstance(imported, dict) else {}
        if name:
            if name not in found:
                raise UsageError(f"{from_file} has no server {name!r} (it has: {', '.join(found) or 'none'})")
            found = {name: found[name]}
        mcp_file.check_all(found, str(from_file))
        servers.update(found)
        mcp_file.write(doc)
        click.echo(f"added {len(found)} server(s): {', '.join(found) or 'none'}")
        return
    if not name:
        raise UsageError("give a NAME (or --from FILE)", "e.g. aios mcp add git -- uvx mcp-server-git")
    spec: dict[str, Any] = {}
    if url and command:
        raise UsageError("give either a COMMAND or --url, not both")
    if url:
        spec["url"] = url
    elif command:
        spec["command"], spec["args"] = command[0], list(command[1:])
    else:
        raise UsageError("give a COMMAND (after --) or --url")
    if envs:
        spec["env"] = _pairs(envs, "--env")
    if headers:
        spec["headers"] = _pairs(headers, "--header")
    if timeout is not None:
        spec["timeout"] = timeout
    if allowed:
        spec["allowed_tools"] = list(allowed)
    if denied:
        spec["denied_tools"] = list(denied)
    if autostart:
        spec["autostart"] = True
    if egress:
        spec["egress"] = True
    mcp_file.check(name, spec)
    replaced = name in servers
    servers[name] = spec
    mcp_file.write(doc)
    click.echo(f"{'replaced' if replaced else 'added'} MCP server {name}")


@mcp_group.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_servers(as_json: bool) -> None:
    """List configured servers (secrets shown as ***).

    \b
    Example:
      aios mcp list --json
    """
    from kernel.launch import mcp_file

    rows = []
    for name, spec in (mcp_file.read().get("mcpServers") or {}).items():
        row = mcp_file.check(name, spec)
        row["target"] = row.get("url") or " ".join([row.get("command", ""), *row.get("args", [])])
        rows.append(row)
    if as_json:
        print_json({"servers": rows})
        return
    table(rows, ("name", "transport", "target", "timeout", "autostart"), empty="no MCP servers (see `aios mcp add`)")


@mcp_group.command("remove", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
def remove(name: str) -> None:
    """Remove a server from mcp.json.

    \b
    Example:
      aios mcp remove git
    """
    from kernel.launch import mcp_file

    doc = mcp_file.read()
    servers = doc.get("mcpServers") or {}
    if name not in servers:
        raise UsageError(f"no MCP server {name!r}", f"configured: {', '.join(servers) or 'none'}")
    del servers[name]
    mcp_file.write(doc)
    click.echo(f"removed MCP server {name}")


def _warn(text: str) -> None:
    click.echo(text, err=True)


@mcp_group.command("test", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--mcp-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Another mcp.json.")
def test(name: str, as_json: bool, mcp_config: Path | None) -> None:
    """Start one server on its own (apart from the kernel's), list its tools, and stop it.

    \b
    Example:
      aios mcp test git
    """
    if mcp_config is None:  # a tool.test syscall by the user: checked and audited
        info = _as_user(lambda user: user.call("tool.test", server=name))
    else:
        info = _try("test", mcp_config, server=name)
    if as_json:
        print_json(info)
    else:
        click.echo(f"{name}: {info['state']} in {info['start_s']}s" + (f" ({info['error']})" if info["error"] else ""))
        for warning in info["warnings"]:
            click.echo(f"warning: {warning}")
        table(info["tool_list"], ("name", "side_effect", "description"), empty="no tools")
    if info["state"] != "ready":
        sys.exit(1)


@mcp_group.command("tools", context_settings=CONTEXT_SETTINGS)
@click.option("--search", "query", help="Rank tools for a task description.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with input schemas).")
@click.option("--mcp-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Another mcp.json.")
def tools_cmd(query: str | None, as_json: bool, mcp_config: Path | None) -> None:
    """Start every server and list (or search) all tools as server.tool.

    \b
    Example:
      aios mcp tools --search "what time is it in Tokyo"
    """
    if mcp_config is None:  # the kernel's catalog, as the user may see it (tool.list / tool.search)

        async def ask(user: Any) -> list[dict[str, Any]]:
            if query:
                return list((await user.call("tool.search", query=query, schemas=as_json))["tools"])
            return list((await user.call("tool.list", schemas=as_json))["tools"])

        rows = _as_user(ask)
    else:
        rows = _try("tools", mcp_config, query=query, schemas=as_json)
    if as_json:
        print_json({"tools": rows})
    else:
        table(rows, ("name", "side_effect", "description"), empty="no tools")


@mcp_group.command("call", context_settings=CONTEXT_SETTINGS)
@click.argument("tool")
@click.argument("arguments", default="{}")
@click.option("--timeout", type=float, help="Seconds without result or progress before cancelling.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--mcp-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Another mcp.json.")
def call(tool: str, arguments: str, timeout: float | None, as_json: bool, mcp_config: Path | None) -> None:
    """Call one tool with JSON arguments.

    \b
    Example:
      aios mcp call time.now '{"timezone": "Asia/Tokyo"}'
    """
    try:
        args = json.loads(arguments)
    except ValueError as exc:
        raise UsageError(f"ARGUMENTS must be a JSON object: {exc}") from None
    if not isinstance(args, dict):
        raise UsageError('ARGUMENTS must be a JSON object, e.g. \'{"timezone": "UTC"}\'')
    if mcp_config is None:  # a tool.call syscall by the user: checked, accounted, audited, seen by front ends
        payload: dict[str, Any] = {"tool": tool, "args": args}
        if timeout is not None:
            payload["timeout_s"] = timeout
        result = _as_user(lambda user: user.call("tool.call", **payload))
    else:
        result = _try("call", mcp_config, tool=tool, args=args, timeout_s=timeout)
    if as_json:
        print_json(result)
    else:
        click.echo(result["text"])
    if result["is_error"]:
        sys.exit(1)


def _try(action: str, mcp_config: Path | None, **payload: Any) -> Any:
    """A ``tool.try`` syscall: servers of another mcp.json (or a plan file's own) started apart from the
    kernel's host for this call, to try them before adding them; checked and audited like any tool call."""
    import os

    from kernel.connect import call_as_user

    if mcp_config is not None:
        payload["mcp_config"] = os.path.abspath(mcp_config)
    out = call_as_user("tool.try", loading=status, action=action, **payload)
    for warning in out["warnings"]:
        _warn(f"warning: {warning}")
    return out["result"]


def _as_user(work: Any) -> Any:
    """Run ``work(user)`` through the one door (the running kernel, or one started for this command)."""
    from kernel.connect import run_as_user

    return run_as_user(work, loading=status)


@mcp_group.command("serve", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--http", "http", metavar="HOST:PORT", help="Serve streamable HTTP (bearer token required) instead of stdio."
)
@click.option("--allow-remote", is_flag=True, help="Let --http bind an address other machines can reach.")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="GLOB",
    help="Syscalls the client may use, e.g. 'fs.*' (repeatable; default: read-only ones).",
)
@click.option("--read", "files_read", multiple=True, metavar="DIR", help="Folders readable through fs.* (repeatable).")
@click.option(
    "--write", "files_write", multiple=True, metavar="DIR", help="Folders writable through fs.* (repeatable)."
)
@click.option("--memory", "memory", multiple=True, metavar="NAMESPACE", help="Memory namespaces (repeatable).")
@click.option("--family", "families", multiple=True, help="Syscall families to expose (default: fs, mem, task).")
def serve(
    http: str | None,
    allow_remote: bool,
    allow: tuple[str, ...],
    files_read: tuple[str, ...],
    files_write: tuple[str, ...],
    memory: tuple[str, ...],
    families: tuple[str, ...],
) -> None:
    """Expose aios's semantic FS, memory and tasks as an MCP server (for Claude Desktop, Cursor...).

    Over --http every request needs `Authorization: Bearer TOKEN`; the token is made on the first start
    (shown once, kept 0600 in the data dir, see `aios mcp token`). Loopback only unless --allow-remote.

    \b
    Examples:
      aios mcp serve --allow 'fs.*' --read ~/notes
      aios mcp serve --http 127.0.0.1:8765 --allow 'mem.*' --memory 'notes'
    """
    from aios.api import Capabilities
    from kernel.launch import serve_mcp

    caps = Capabilities(
        tools=tuple(allow),
        files_read=tuple(files_read),
        files_write=tuple(files_write),
        memory_read=tuple(memory),
        memory_write=tuple(memory),
    )
    serve_mcp(
        caps,
        http=http,
        allow_remote=allow_remote,
        families=tuple(families) or None,
        warn=_warn,
        on_token=lambda token: _show_token(token, "new bearer token for `aios mcp serve --http` (shown once)"),
    )


def _show_token(token: str, what: str) -> None:
    click.echo(f"{what}: {token}", err=True)
    click.echo(f"stored in {paths.mcp_http_token_path()} (mode 0600); rotate with `aios mcp token --rotate`", err=True)


@mcp_group.command("token", context_settings=CONTEXT_SETTINGS)
@click.option("--rotate", is_flag=True, help="Make a new token; the old one stops working at once.")
def token_cmd(rotate: bool) -> None:
    """Show where the bearer token of `aios mcp serve --http` is kept, or replace it.

    The token is printed only when it is made; read the file to configure a client.

    \b
    Examples:
      aios mcp token
      aios mcp token --rotate
      curl -H "Authorization: Bearer $(cat "$(aios mcp token)")" ...
    """
    from kernel.launch import rotate_mcp_token

    if rotate:
        _show_token(rotate_mcp_token(), "new bearer token (the old one no longer works, running servers included)")
    where = paths.mcp_http_token_path()
    if not where.exists():
        raise UsageError(f"no token yet at {where}", "it is made by the first `aios mcp serve --http`, or --rotate")
    click.echo(str(where))


@click.group("plan", context_settings=CONTEXT_SETTINGS)
def plan_group() -> None:
    """Tool plans: typed DAGs of MCP tool calls, run in parallel."""


@plan_group.command("run", context_settings=CONTEXT_SETTINGS)
@click.argument("plan_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mcp-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Another mcp.json.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (results and metrics) as the last line.")
def plan_run(plan_file: Path, mcp_config: Path | None, as_json: bool) -> None:
    """Run a saved plan without the LLM: every ready step starts at once.

    \b
    Example plan.json:
      {"steps": [{"id": "t", "tool": "time.now", "args": {"timezone": "Asia/Tokyo"}},
                 {"id": "e", "tool": "slow.echo", "args": {"text": "${t.iso}"}}]}
      aios plan run plan.json --json
    """
    from kernel.launch import check_plan

    try:
        data = json.loads(plan_file.read_text())
    except ValueError as exc:
        raise UsageError(f"{plan_file}: not valid JSON: {exc}") from None
    check_plan(data, str(plan_file))
    if mcp_config is None and not (isinstance(data, dict) and data.get("servers")):
        # A kernel process (the built-in `plan` agent): in `aios ps` and the TUI, each call checked and audited.
        _render_plan(_plan_process(data), as_json)
        return
    if isinstance(data, list):
        data = {"steps": data}
    servers = data.pop("servers", None) or {}
    _render_plan(_try("plan", mcp_config, servers=servers, plan=data), as_json)


def _plan_process(data: dict[str, Any]) -> dict[str, Any]:
    from aios._cli_run import run_agent

    info = run_agent("plan", json.dumps(data), priority=None, stream=None, status=status)  # approvals asked here
    if not info.get("result"):
        raise UsageError(f"the plan process ended without a result: {info.get('error') or info.get('state')}")
    return dict(json.loads(info["result"]))


def _render_plan(result: dict[str, Any], as_json: bool) -> None:
    steps = result.get("results", {})
    if as_json:
        click.echo(json.dumps(result, default=str))
    else:
        for step_id, r in steps.items():
            mark = "error" if r["is_error"] else "ok"
            click.echo(f"{step_id:<12} {mark:<5} {r['elapsed_s']:7.3f}s  {' '.join(r['text'].split())[:200]}")
        m = result.get("metrics", {})
        click.echo(
            f"makespan {m.get('makespan_s', 0):.3f}s, critical path {' -> '.join(m.get('critical_path', []))} "
            f"({m.get('critical_path_s', 0):.3f}s), parallel width {m.get('parallel_width_max', 0)}"
        )
    if any(r["is_error"] for r in steps.values()):
        sys.exit(1)
