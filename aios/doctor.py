"""Health checks behind `aios doctor`: each check says in one line what is wrong and how to fix it."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from aios import paths
from aios.config import Config, load_config
from aios.errors import AiosError
from aios.fileio import ensure_writable_dir

__all__ = ["Check", "run_checks"]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _config() -> tuple[Check, Config | None]:
    try:
        config = load_config()
    except AiosError as exc:
        return Check("config", False, exc.one_line()), None
    where = paths.config_path()
    return Check("config", True, f"{where}" if where.exists() else f"defaults ({where} not created)"), config


def _model(config: Config | None) -> Check:
    """Whole-file GGUF check, then a real load: a file whose structure is sound may still fail in llama.cpp."""
    from kernel.launch import probe_model

    try:
        return Check("model", True, probe_model((config or Config()).llm.model))  # broken config: the default
    except AiosError as exc:
        return Check("model", False, exc.one_line())


def _engine() -> Check:
    if importlib.util.find_spec("llama_cpp") is None:
        return Check("engine", False, "llama-cpp-python is not installed (run `pip install llama-cpp-python`)")
    return Check("engine", True, "llama-cpp-python available")


def _data_dir() -> Check:
    folder = paths.data_dir()
    try:
        ensure_writable_dir(folder)
    except OSError as exc:
        return Check(
            "data dir", False, f"{folder} is not writable: {exc.strerror or exc} (set AIOS_HOME to a writable folder)"
        )
    return Check("data dir", True, str(folder))


def _store() -> Check:
    from kernel.launch import probe_store

    try:
        return Check("store", True, probe_store())
    except AiosError as exc:
        return Check("store", False, exc.one_line())


def _embeddings() -> list[Check]:
    from kernel.launch import probe_embeddings

    return [
        Check(f"embedding {label}", problem is None, problem or f"{path} (sha256 ok)")
        for label, problem, path in probe_embeddings()
    ]


def _plugins() -> Check:
    from aios.plugin_manager import PluginManager

    manager = PluginManager()
    agents = manager.agents()
    if manager.failures:
        first = manager.failures[0]
        return Check("plugins", False, f"{first.source}: {first.error} (fix or remove that plugin)")
    return Check("plugins", True, f"{len(manager.plugin_names())} loaded, agents: {', '.join(sorted(agents))}")


def _modes() -> Check:
    from aios.filemodes import loose_paths

    report = loose_paths()
    if not report:
        return Check("modes", True, "data dir and secret files are private (0700 dirs, 0600 files)")
    shown = ", ".join(str(p) for p in report.loose[:5]) + (
        f" and {len(report.loose) - 5} more" if len(report.loose) > 5 else ""
    )
    return Check("modes", False, f"readable or writable by others: {shown} (fix: {'; '.join(report.fixes)})")


def _confinement(config: Config | None) -> Check:
    from aios.landlock import abi_version, confinement_level

    abi = abi_version()
    level = confinement_level(abi)
    if abi <= 0:
        return Check("confinement", False, f"{level}; plugin agents start only with `aios run --unconfined`")
    where = "in-process" if (config or Config()).kernel.inprocess_builtin else "confined"
    return Check("confinement", True, f"{level}; every agent in its own process (built-ins {where})")


def run_checks() -> list[Check]:
    """Every check runs, whatever failed before it: a broken config must not hide the other problems."""
    config_check, config = _config()
    return [
        config_check,
        _data_dir(),
        _modes(),
        _store(),
        _engine(),
        _model(config),
        *_embeddings(),
        _plugins(),
        _confinement(config),
    ]
