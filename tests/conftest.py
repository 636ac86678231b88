from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory.store import Store


@pytest.fixture(autouse=True)
def aios_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data/config dir; nothing touches the real home."""
    home = tmp_path / "aios-home"
    monkeypatch.setenv("AIOS_HOME", str(home))
    return home


@pytest.fixture
def anyio_backend() -> str:
    # Textual and the engine's thread hand-off run on asyncio.
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fresh store (every migration applied) in the test's tmp dir."""
    s = Store.open(tmp_path / "aios.db")
    yield s
    s.close()
