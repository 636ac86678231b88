from __future__ import annotations

from pathlib import Path

import pytest

from aios import paths
from aios.config import Config, dump_toml, load_config, parse_config
from aios.errors import ConfigError


def test_aios_home_overrides_every_location(aios_home: Path) -> None:
    assert paths.data_dir() == aios_home
    assert paths.config_dir() == aios_home
    assert paths.db_path() == aios_home / "aios.db"
    assert paths.config_path() == aios_home / "config.toml"
    assert paths.runtime_dir() == aios_home / "run"


def test_without_override_uses_platformdirs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOS_HOME")
    assert paths.data_dir().name == "aios"
    assert paths.config_dir().name == "aios"


def test_missing_file_gives_defaults() -> None:
    config = load_config()
    assert config == Config()
    assert config.llm.backend == "llama"
    assert config.kernel.default_priority == "normal"


def test_file_values_are_read(aios_home: Path) -> None:
    aios_home.mkdir()
    (aios_home / "config.toml").write_text('[llm]\nn_ctx = 2048\ntemperature = 0.0\n[tui]\ntheme = "nord"\n')
    config = load_config()
    assert config.llm.n_ctx == 2048
    assert config.llm.temperature == 0.0
    assert config.tui.theme == "nord"
    assert config.llm.max_tokens == Config().llm.max_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[llm]\nbogus = 1\n", "unknown key 'llm.bogus'"),
        ("[nope]\nx = 1\n", "unknown key 'nope'"),
        ("[llm]\nn_ctx = 'big'\n", "'llm.n_ctx'"),
        ("[llm]\nn_ctx = 10\n", "greater than or equal to 256"),
        ("[kernel]\ndefault_priority = 'urgent'\n", "'kernel.default_priority'"),
        ("[llm\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_clear_line(aios_home: Path, text: str, expected: str) -> None:
    aios_home.mkdir()
    (aios_home / "config.toml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    line = info.value.one_line()
    assert expected in line
    assert "\n" not in line
    assert str(aios_home / "config.toml") in line
    assert info.value.exit_code == 2


def test_dump_round_trips() -> None:
    import tomllib

    config = parse_config({"llm": {"n_ctx": 1024, "model": 'quote"d'}}, "test")
    again = parse_config(tomllib.loads(dump_toml(config)), "dump")
    assert again == config
