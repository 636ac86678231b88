"""`aios plugins list|info|approve` and `aios agent new NAME` (scaffolds a plugin package whose test passes at once)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from aios._cli_util import CONTEXT_SETTINGS, err, print_json, table
from aios.errors import UsageError

__all__ = ["agent_group", "plugins_group", "scaffold_agent"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@click.group("plugins", context_settings=CONTEXT_SETTINGS)
def plugins_group() -> None:
    """Show the plugins aios found: built-in, installed (entry point group `aios`) and one-file ones."""


def _describe() -> list[dict[str, Any]]:
    from aios.plugin_manager import PluginManager

    return PluginManager().describe()


@plugins_group.command("list", context_settings=CONTEXT_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_plugins(as_json: bool) -> None:
    """List plugins with the agents and tools each provides; broken ones are listed with their error.

    \b
    Example:
      aios plugins list --json
    """
    rows = _describe()
    if as_json:
        print_json({"plugins": rows})
        return
    shown = [
        {
            "name": r["name"],
            "kind": r["kind"],
            "version": r["version"] or "-",
            "agents": ", ".join(a["name"] for a in r["agents"]) or "-",
            "tools": str(len(r["tools"])),
        }
        for r in rows
    ]
    table(shown, ("name", "kind", "version", "agents", "tools"), empty="no plugins")
    for r in rows:
        for problem in r["errors"]:
            err(f"plugin {r['name']}: {problem}")


@plugins_group.command("info", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugin_info(name: str, as_json: bool) -> None:
    """Show one plugin: where it comes from, its agents (with the capabilities they ask for) and tools.

    NAME is a plugin name from `aios plugins list` (or one of its agents).

    \b
    Example:
      aios plugins info plugins.planner
    """
    rows = _describe()
    found = [r for r in rows if r["name"] == name] or [r for r in rows if any(a["name"] == name for a in r["agents"])]
    if not found:
        known = ", ".join(r["name"] for r in rows)
        raise UsageError(f"no plugin named '{name}' (known: {known})", "see `aios plugins list`")
    row = found[0]
    if as_json:
        print_json(row)
        return
    click.echo(
        f"{row['name']}  ({row['kind']}{', ' + row['distribution'] if row['distribution'] else ''}"
        f"{' ' + row['version'] if row['version'] else ''})"
    )
    click.echo(f"module   {row['module'] or '-'}")
    for agent in row["agents"]:
        click.echo(f"agent    {agent['name']}: {agent['description']}")
        caps = ", ".join(f"{k}={v}" for k, v in agent["capabilities"].items()) or "nothing beyond the defaults"
        click.echo(f"         asks for: {caps}")
        click.echo(f"         approval: {agent['approval']}")
    for tool in row["tools"]:
        click.echo(f"tool     {tool}")
    for problem in row["errors"]:
        click.echo(f"error    {problem}")


@plugins_group.command("approve", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
def plugin_approve(name: str) -> None:
    """Approve a third-party agent's declared capabilities without running it (the first run asks otherwise).

    NAME is an agent, or a plugin (all its agents). Recorded in config.toml as `[plugins.approved.AGENT]`;
    when the agent's declared capabilities change, its next run asks again. Built-in agents need no approval.

    \b
    Example:
      aios plugins approve wordcount
    """
    from aios.plugin_manager import PluginManager

    approved = PluginManager().approve(name)
    if not approved:
        click.echo(f"{name}: built in, needs no approval")
    for subject in approved:
        caps = ", ".join(f"{k}={v}" for k, v in subject.capabilities.items()) or "nothing beyond the defaults"
        version = f" {subject.version}" if subject.version else ""
        click.echo(f"approved {subject.agent} ({subject.plugin}{version}): {caps}")


@click.group("agent", context_settings=CONTEXT_SETTINGS)
def agent_group() -> None:
    """Write your own agents."""


@agent_group.command("new", context_settings=CONTEXT_SETTINGS)
@click.argument("name")
@click.option(
    "--dir",
    "parent",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to create the package folder.",
)
def new_agent(name: str, parent: Path) -> None:
    """Scaffold a plugin package for a new agent NAME: pyproject (entry point group `aios`), the agent, a
    `@tool`, and a test on the fake backend that passes as generated.

    \b
    Example:
      aios agent new notes-helper && cd aios-notes-helper && pip install -e . && pytest
    """
    root = scaffold_agent(name, parent)
    click.echo(f"created {root}")
    click.echo(f"next: cd {root} && pip install -e . && pytest   (then: aios run {name} 'hello')")


def scaffold_agent(name: str, parent: Path) -> Path:
    """Write the package ``aios-NAME`` under ``parent``; a UsageError (nothing written) if NAME is invalid or
    the folder exists."""
    if not _NAME.match(name):
        raise UsageError(f"agent name {name!r} must match {_NAME.pattern}", "e.g. `aios agent new notes-helper`")
    module = "aios_" + name.replace("-", "_")
    root = parent / f"aios-{name}"
    if root.exists():
        raise UsageError(f"{root} already exists", "choose another name or --dir")
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name)) + "Agent"
    files = {
        root / "pyproject.toml": _PYPROJECT,
        root / "README.md": _README,
        root / "src" / module / "__init__.py": _AGENT,
        root / "src" / module / "py.typed": "",
        root / "tests" / f"test_{module}.py": _TEST,
    }
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.replace("{name}", name).replace("{module}", module).replace("{cls}", cls))
    return root


_PYPROJECT = """[project]
name = "aios-{name}"
version = "0.1.0"
description = "The {name} agent for aios"
requires-python = ">=3.11"
dependencies = ["aios"]

# aios finds plugins through this entry point group.
[project.entry-points.aios]
{name} = "{module}"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{module}"]

[tool.pytest.ini_options]
pythonpath = ["src"]
"""

_README = """# aios-{name}

An aios agent. Install it next to aios and run it:

    pip install -e .
    aios plugins info {name}
    aios run {name} "hello"

Test it on the deterministic fake backend (no model needed): `pytest`.
"""

_AGENT = '''"""The {name} agent: what it does, in one line."""

from __future__ import annotations

from aios import Agent, Capabilities, Context, Manifest, hookimpl, tool


class {cls}(Agent):
    manifest = Manifest(
        name="{name}",
        description="Answers a goal in one sentence.",
        # Ask only for what the agent needs: everything else is denied (and shown to the user for approval).
        capabilities=Capabilities(llm_token_budget=20_000),
    )

    async def run(self, ctx: Context, goal: str) -> str | None:
        answer = await ctx.llm.complete(goal or "Say hello.", system="Answer in one sentence.", max_tokens=80)
        await ctx.write(answer + "\\n")
        return answer


@tool(read_only=True)
def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())


@hookimpl
def register_agents() -> list[type[Agent]]:
    return [{cls}]


@hookimpl
def register_tools() -> list[object]:
    return [word_count]
'''

_TEST = '''"""{name} on the deterministic fake backend: a real kernel, real access control, a scripted model."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from {module} import {cls}, word_count


def test_the_tool_is_a_plain_function() -> None:
    assert word_count("one two three") == 3


def test_the_agent_answers_its_goal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.testing import run_agent

    monkeypatch.setenv("AIOS_HOME", str(tmp_path))
    run = anyio.run(lambda: run_agent({cls}, "hello", reply=lambda messages: "Hello there."))
    assert run.state == "exited", run.error
    assert run.result == "Hello there."
    assert run.prompts[0][-1]["content"] == "hello"
'''
