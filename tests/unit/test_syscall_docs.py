"""docs/syscalls.md is generated from the syscall table: the page and the table never disagree."""

from __future__ import annotations

from pathlib import Path

from kernel.syscall_docs import render

PAGE = Path(__file__).resolve().parents[2] / "docs" / "syscalls.md"


def test_the_reference_page_matches_the_syscall_table() -> None:
    assert PAGE.read_text() == render(), "regenerate: python -m kernel.syscall_docs > docs/syscalls.md"


def test_every_syscall_is_on_the_page_with_its_fields() -> None:
    from kernel.syscalls import SYSCALLS

    text = render()
    for name, spec in SYSCALLS.items():
        if name.startswith("proc.test_"):
            continue
        assert f"### `{name}`" in text
        for field in spec.request.model_fields:
            assert f"| `{field}` |" in text, (name, field)
