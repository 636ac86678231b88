"""The layers of docs/architecture.md, checked three ways.

- At run time: importing the core (every module of kernel, memory, tools, plugins and the aios leaf) loads no
  textual and no tui; importing ``aios`` alone loads none of the other packages.
- Statically: the import-linter contracts in pyproject.toml (``make lint`` runs them). They are shown to fail
  on deliberately violating modules written into a copy of the tree, and their module lists are checked to
  cover every module, so a new module has to be placed in a layer.
- On the real tree: every contract holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("aios", "kernel", "memory", "tools", "tui", "plugins")


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["id"]: c for c in config["contracts"]}


def _layer(raw: str) -> list[str]:
    return [name.strip() for name in raw.split(":")]


def _front_and_leaf() -> tuple[list[str], list[str]]:
    layers = _contracts()["layers"]["layers"]
    front = [m for m in _layer(layers[0]) if m.startswith("aios.")]
    return front, _layer(layers[-1])


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
    args += ["--no-logo", "--no-cache", *(f"--contract={c}" for c in contracts)]
    # A wide terminal: contract names stay on one line in the report.
    env = {**os.environ, "COLUMNS": "300"}
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


# -- at run time ---------------------------------------------------------------------------------------------


def test_the_core_loads_no_ui() -> None:
    """Every module of kernel, memory, tools, plugins and the aios leaf, imported: no textual, no tui."""
    _, leaf = _front_and_leaf()
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        for pkg in ("kernel", "memory", "tools", "plugins"):
            for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
                importlib.import_module(info.name)
        for name in {leaf!r}:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "tui"))
        assert not bad, bad
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_aios_package_alone_loads_no_other_layer() -> None:
    """``import aios`` (the plugin API a third party starts from) pulls in no kernel, store, tools or UI."""
    code = (
        "import sys, aios;"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {(*PACKAGES[1:], 'textual')!r});"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]


# -- the contracts' module lists cover the tree --------------------------------------------------------------


def _modules(package: str) -> set[str]:
    """The direct submodules (files and subpackages) of ``package``, as dotted names."""
    found = {f"{package}.{p.stem}" for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
    found |= {f"{package}.{p.parent.name}" for p in (ROOT / package).glob("*/__init__.py")}
    return found


def _all_modules(package: str) -> set[str]:
    """``package`` and every module below it."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def _covered(module: str, expressions: list[str]) -> bool:
    return any(module == e or (e.endswith(".**") and module.startswith(e.removesuffix("**"))) for e in expressions)


def test_every_aios_module_is_either_front_end_or_leaf() -> None:
    front, leaf = _front_and_leaf()
    assert not set(front) & set(leaf), "a module in both the front-end and the leaf layer"
    unplaced = _modules("aios") - set(front) - set(leaf)
    assert not unplaced, f"place these in pyproject's layers contract (front end or leaf): {sorted(unplaced)}"
    gone = (set(front) | set(leaf)) - _modules("aios")
    assert not gone, f"pyproject's layers contract names modules that do not exist: {sorted(gone)}"


def test_the_contracts_repeat_the_same_lists() -> None:
    contracts = _contracts()
    front, leaf = _front_and_leaf()
    assert sorted(m for m in contracts["plugins"]["forbidden_modules"] if m.startswith("aios.")) == sorted(front)
    assert sorted(m for m in contracts["front-ends"]["source_modules"] if m.startswith("aios.")) == sorted(front)
    assert sorted(m for m in contracts["ui-free-core"]["source_modules"] if m.startswith("aios.")) == sorted(leaf)


def test_front_ends_may_import_only_the_door_of_the_kernel() -> None:
    """kernel.connect, kernel.launch, kernel.client and kernel.events; every other module of kernel/ is
    forbidden to them."""
    forbidden = _contracts()["front-ends"]["forbidden_modules"]
    door = {"kernel.connect", "kernel.launch", "kernel.client", "kernel.events"}
    uncovered = {m for m in _all_modules("kernel") - door if not _covered(m, forbidden)}
    assert not uncovered, f"add these to the front-ends contract's forbidden_modules: {sorted(uncovered)}"
    assert not {m for m in door if _covered(m, forbidden)}
    for package in ("memory", "tools"):
        assert all(_covered(m, forbidden) for m in _all_modules(package))


# -- the contracts can fail ----------------------------------------------------------------------------------


def _tree_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


# (contract id, file to write in the copy, its source, what the report must say)
VIOLATIONS = [
    ("layers", "memory/layer_probe.py", "from kernel.kernel import Kernel\n", "memory.layer_probe -> kernel.kernel"),
    ("layers", "tools/layer_probe.py", "import tui.app\n", "tools.layer_probe -> tui.app"),
    ("layers", "kernel/layer_probe.py", "import plugins.chat\n", "kernel.layer_probe -> plugins.chat"),
    ("layers", "aios/errors.py", "from memory.store import Store\n", "aios.errors -> memory.store"),
    ("plugins", "plugins/layer_probe.py", "from memory.store import Store\n", "plugins.layer_probe -> memory.store"),
    ("front-ends", "tui/layer_probe.py", "from tools.host import McpHost\n", "tui.layer_probe -> tools.host"),
    ("ui-free-core", "memory/layer_probe.py", "import textual.app\n", "memory.layer_probe -> textual"),
    ("ui-free-core", "aios/paths.py", "import rich\n", "aios.paths -> rich"),
    ("textual-in-tui", "aios/cli_config.py", "import textual\n", "aios.cli_config -> textual"),
    ("tui-plugins", "plugins/layer_probe.py", "import tui.console\n", "plugins.layer_probe -> tui.console"),
    ("private", "kernel/layer_probe.py", "from aios._cli_util import table\n", "kernel.layer_probe -> aios._cli_util"),
    ("acyclic", "memory/layer_probe.py", "import memory.store\n", "memory"),
]


@pytest.mark.parametrize(
    ("contract", "path", "source", "reported"), VIOLATIONS, ids=[v[0] + ":" + v[1] for v in VIOLATIONS]
)
def test_a_violating_module_breaks_its_contract(
    tmp_path: Path, contract: str, path: str, source: str, reported: str
) -> None:
    tree = _tree_copy(tmp_path)
    target = tree / path
    if contract == "acyclic":
        # memory.store imports the probe back: a cycle memory.store <-> memory.layer_probe.
        store = tree / "memory" / "store.py"
        store.write_text(store.read_text() + "\nimport memory.layer_probe  # noqa\n")
    target.write_text((target.read_text() if target.exists() else "") + "\n" + source)
    result = _lint_imports(tree, contract)
    assert result.returncode != 0, result.stdout
    report = result.stdout.split("Broken contracts", 1)[-1]
    if contract == "acyclic":
        assert "No cycles are allowed in memory" in report and ".layer_probe" in report, report
    else:
        assert reported in report, report


# -- the real tree -------------------------------------------------------------------------------------------


def test_the_real_tree_keeps_every_contract() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout
