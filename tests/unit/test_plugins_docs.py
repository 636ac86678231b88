"""docs/plugins.md: its API reference is the one generated from aios.api, and it names every public facade."""

from __future__ import annotations

from pathlib import Path

from aios import api
from aios.api_docs import BEGIN, END, reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_the_reference_section_is_generated_from_the_code() -> None:
    text = DOC.read_text()
    section = text[text.index(BEGIN) : text.index(END) + len(END)]
    assert section == reference(), "run `python -m aios.api_docs` to regenerate docs/plugins.md"


def test_every_public_facade_method_is_documented() -> None:
    section = reference()
    for cls in (api.Files, api.Memory, api.Tasks, api.Tools, api.LLMHelpers):
        for name, member in vars(cls).items():
            if not name.startswith("_") and callable(member):
                assert f"{name}(" in section, f"{cls.__name__}.{name} is missing from the reference"
