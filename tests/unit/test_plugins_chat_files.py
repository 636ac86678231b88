"""The chat agent searches the user's mounted files when asked, through fs.search under its read grant; it says
so plainly when nothing is mounted or it may not read there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from _semfs_kit import write_corpus

from aios.config import Config
from aios.plugin_manager import PluginManager
from kernel import open_kernel
from kernel.backends.fake import FakeBackend
from memory.store import Store
from plugins.chat import file_query

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("message", "query"),
    [
        ("search my files for notes about backups", "notes about backups"),
        ("Could you look through my documents for invoices from May?", "invoices from May"),
        ("find the notes about aphids", "aphids"),
        ("search for a good cat name", None),  # no files named: an ordinary message
        ("what is in my files", None),
    ],
)
def test_which_messages_ask_for_a_file_search(message: str, query: str | None) -> None:
    assert file_query(message) == query


async def _chat(tmp_path: Path, mount: Path | None, *messages: str) -> str:
    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(60):
            async with open_kernel(
                Config(), runtime=FakeBackend(), store=store, plugins=PluginManager(load_entry_points=False)
            ) as kernel:
                if mount is not None:
                    await anyio.to_thread.run_sync(lambda: kernel.services["semfs"].index(mount))
                pid = await kernel.spawn("chat", messages[0], interactive=True)
                for text in messages[1:]:
                    await kernel.send(pid, text)
                await kernel.close_input(pid)
                info = await kernel.wait(pid)
        assert info["state"] == "exited", info.get("error")
        return "".join(m["content"] for m in store.messages(pid) if m["role"] == "assistant")
    finally:
        store.close()


async def test_chat_lists_the_matching_files_it_may_read(
    tmp_path: Path, aios_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # chat reads under ~
    root = write_corpus(tmp_path / "docs")
    said = await _chat(tmp_path, root, "hello", "search my files for notes about aphids")
    assert "Files matching 'notes about aphids':\n- " in said
    assert f"- {root / 'garden.md'}: ## Pests Aphids can be washed off the leaves with soapy water." in said


async def test_chat_says_when_nothing_is_mounted_or_readable(
    tmp_path: Path, aios_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    said = await _chat(tmp_path, None, "search my notes for backups")
    assert "No folder you let me read is mounted: add one with `aios fs mount ~/notes`" in said
    outside = write_corpus(tmp_path / "elsewhere")  # mounted, but not under ~: not the chat agent's to read
    said = await _chat(tmp_path / "second", outside, "search my files for aphids")
    assert "I may not search your files: " in said and "outside the folders this agent may read" in said
    assert "soapy" not in said


async def test_chat_drops_earlier_exchanges_after_an_edit(tmp_path: Path) -> None:
    """The exchanges kept after the task slice are only those since the last edit: after "not Rome, Lisbon",
    the earlier exchange (which says Rome) is not in the prompt; a question keeps it."""
    prompts: list[list[Any]] = []

    def script(messages: Any) -> str:
        prompts.append(list(messages))
        return "noted"

    store = Store.open(tmp_path / "aios.db")
    try:
        with anyio.fail_after(60):
            async with open_kernel(
                Config(),
                runtime=FakeBackend(script=script),
                store=store,
                plugins=PluginManager(load_entry_points=False),
            ) as kernel:
                pid = await kernel.spawn("chat", "Plan my trip", interactive=True)
                for text in (
                    "Add the city: Rome",
                    "What is the city?",
                    "Actually, make the city Lisbon.",
                    "What is the city?",
                ):
                    await kernel.send(pid, text)
                await kernel.close_input(pid)
                info = await kernel.wait(pid)
    finally:
        store.close()
    assert info["state"] == "exited", info.get("error")
    distinct = [p for i, p in enumerate(prompts) if i == 0 or p != prompts[i - 1]]  # the fake sees each twice
    replies = [
        p
        for p in distinct
        if p[-1]["role"] == "user" and p[-1]["content"] in ("What is the city?", "Actually, make the city Lisbon.")
    ]
    question, edit, after = replies[-3:]
    assert [m["role"] for m in question] == ["system", "user", "assistant", "user", "assistant", "user"]  # kept
    assert [m["role"] for m in edit] == ["system", "user"]  # the edit replaced a value
    assert [m["role"] for m in after] == ["system", "user", "assistant", "user"]  # since the edit only
    assert "Rome" not in " ".join(m["content"] for m in after[1:])
