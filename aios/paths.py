"""Where aios keeps things.

Everything lives under platformdirs' per-user directories unless ``AIOS_HOME`` is set, in which case
data, config and runtime files all live under that one folder (tests set it to a tmp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "chroma_dir",
    "config_dir",
    "config_path",
    "data_dir",
    "db_path",
    "home_override",
    "logs_dir",
    "mcp_config_path",
    "mcp_http_token_path",
    "models_path",
    "plugins_dir",
    "runtime_dir",
    "swap_dir",
]

APP_NAME = "aios"


def home_override() -> Path | None:
    value = os.environ.get("AIOS_HOME")
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    home = home_override()
    return home if home else Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    home = home_override()
    return home if home else Path(platformdirs.user_config_dir(APP_NAME))


def runtime_dir() -> Path:
    home = home_override()
    if home:
        return home / "run"
    import warnings

    with warnings.catch_warnings():  # no XDG_RUNTIME_DIR (ssh, containers): platformdirs warns on every command
        warnings.simplefilter("ignore")
        return Path(platformdirs.user_runtime_dir(APP_NAME))


def db_path() -> Path:
    return data_dir() / "aios.db"


def config_path() -> Path:
    return config_dir() / "config.toml"


def models_path() -> Path:
    return config_dir() / "models.json"


def mcp_config_path() -> Path:
    return config_dir() / "mcp.json"


def mcp_http_token_path() -> Path:
    """Bearer token of ``aios mcp serve --http`` (a secret: in the private data dir, not the config dir,
    which people copy into dotfiles repositories)."""
    return data_dir() / "mcp-http.token"


def plugins_dir() -> Path:
    return config_dir() / "plugins"


def chroma_dir() -> Path:
    return data_dir() / "chroma"


def swap_dir() -> Path:
    return data_dir() / "swap"


def logs_dir() -> Path:
    return data_dir() / "logs"
