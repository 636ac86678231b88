"""The Textual app against the FakeBackend: prompts spawn agents, text streams in, the table follows."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input

from aios.config import Config, LLMConfig
from kernel.backends.fake import FakeBackend
from memory.store import Store
from tui import AiosApp, make_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    try:
        with anyio.fail_after(timeout):
            while not condition():
                await pilot.pause(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def console_text(app: AiosApp) -> str:
    return "\n".join(app.agent_console.lines)


def table_rows(app: AiosApp) -> dict[int, list[str]]:
    table = app.process_table
    return {int(str(key.value)): [str(cell) for cell in table.get_row(key)] for key in table.rows}


def state_of(app: AiosApp, pid: int) -> str | None:
    row = table_rows(app).get(pid)
    return None if row is None else row[2]


@asynccontextmanager
async def running(app: AiosApp) -> AsyncIterator[tuple[Pilot[None], list[Message]]]:
    """Run the app headless and wait for the kernel (``AiosApp.KernelReady``)."""
    messages: list[Message] = []
    async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
        await wait_for(
            pilot,
            lambda: any(isinstance(m, (AiosApp.KernelReady, AiosApp.KernelFailed)) for m in messages),
            "the kernel to start",
        )
        yield pilot, messages


async def type_prompt(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*text)
    await pilot.press("enter")


async def test_prompt_spawns_chat_and_streams_reply(store: Store) -> None:
    with anyio.fail_after(20):
        app = make_app(config=Config(), runtime=FakeBackend(token_delay=0.01), store=store)
        async with running(app) as (pilot, messages):
            assert any(isinstance(m, AiosApp.KernelReady) for m in messages)
            assert app.sub_title == "fake-model · in-process"  # the header says where the kernel runs
            assert app.where == "in-process"
            assert table_rows(app) == {}

            await type_prompt(pilot, "hello there")
            await wait_for(pilot, lambda: "chat: echo: hello there" in console_text(app), "the streamed reply")

            assert app.agent_console.lines[:2] == ["you: hello there", "chat: echo: hello there"]
            assert app.selected_pid == 1
            await wait_for(pilot, lambda: state_of(app, 1) == "waiting_input", "the agent to wait for input")
            assert table_rows(app)[1][:4] == ["1", "chat", "waiting_input", "normal"]
            # Accounting arrives through the periodic ps() refresh.
            await wait_for(pilot, lambda: table_rows(app)[1][4] != "0", "token accounting")
            assert app.process_table.cell(1, "ttft").endswith("ms")

            # A second message goes to the same agent, which remembers the conversation.
            await type_prompt(pilot, "again")
            await wait_for(pilot, lambda: "chat: echo: again" in console_text(app), "the second reply")
            assert list(table_rows(app)) == [1]


async def test_second_agent_starts_while_first_is_answering(store: Store) -> None:
    gate = threading.Event()
    app = make_app(config=Config(), runtime=FakeBackend(gate=gate), store=store)
    try:
        with anyio.fail_after(20):
            async with running(app) as (pilot, _):
                await type_prompt(pilot, "first question")
                await wait_for(pilot, lambda: state_of(app, 1) == "waiting_llm", "pid 1 to wait on the model")

                await pilot.press("ctrl+n")
                await wait_for(pilot, lambda: 2 in table_rows(app), "pid 2 in the table")
                await wait_for(pilot, lambda: app.selected_pid == 2, "pid 2 to be selected")
                await type_prompt(pilot, "second question")
                await wait_for(pilot, lambda: "you: second question" in console_text(app), "the second prompt")

                # pid 1 is still held at the gate: nothing streamed yet, and the console shows only pid 2.
                assert sorted(table_rows(app)) == [1, 2]
                assert state_of(app, 1) == "waiting_llm"
                assert "echo" not in app.transcripts.text(1)
                assert "first question" not in console_text(app)

                gate.set()
                await wait_for(pilot, lambda: "chat: echo: second question" in console_text(app), "pid 2's reply")
                await wait_for(pilot, lambda: "chat: echo: first question" in app.transcripts.text(1), "pid 1's reply")
                await wait_for(
                    pilot,
                    lambda: state_of(app, 1) == state_of(app, 2) == "waiting_input",
                    "both agents to finish their turn",
                )

                # Moving the table cursor back to pid 1 shows its conversation.
                app.process_table.focus()
                await wait_for(pilot, lambda: app.focused is app.process_table, "the table to take focus")
                await pilot.press("up")
                await wait_for(pilot, lambda: app.selected_pid == 1, "pid 1 to be selected")
                assert app.agent_console.lines[:2] == ["you: first question", "chat: echo: first question"]
                assert "second question" not in console_text(app)
    finally:
        gate.set()  # the engine thread must not stay blocked, or the kernel cannot shut down


async def test_ctrl_k_kills_selected_process(store: Store) -> None:
    with anyio.fail_after(20):
        app = make_app(config=Config(), runtime=FakeBackend(), store=store)
        async with running(app) as (pilot, _):
            await type_prompt(pilot, "hi")
            await wait_for(pilot, lambda: state_of(app, 1) == "waiting_input", "the first turn to end")

            await pilot.press("ctrl+k")  # priority binding: the focused Input must not take it
            await wait_for(pilot, lambda: state_of(app, 1) == "exited", "pid 1 to be marked exited")
            await wait_for(pilot, lambda: "[exited: exit code 143, killed]" in console_text(app), "the exit notice")

            # With the selected agent dead, the next prompt starts a new one.
            await type_prompt(pilot, "anyone there?")
            await wait_for(pilot, lambda: "chat: echo: anyone there?" in console_text(app), "a new agent's reply")
            assert app.selected_pid == 2
            assert state_of(app, 1) == "exited"


async def test_console_wraps_long_replies_to_its_width(store: Store) -> None:
    with anyio.fail_after(20):
        app = make_app(config=Config(), runtime=FakeBackend(), store=store)
        async with running(app) as (pilot, _):
            words = " ".join(f"word{i}" for i in range(40))
            app.query_one("#prompt", Input).value = words  # typing 300 keys would take seconds
            await pilot.press("enter")
            await wait_for(pilot, lambda: f"chat: echo: {words}\n" in app.agent_console.text, "the long reply")

            width = app.agent_console.scrollable_content_region.width
            lines = app.agent_console.lines
            assert width > 0 and len(lines) > 4
            assert all(len(line) <= width for line in lines)
            # Wrapping only moves whole words to the next line.
            shown = " ".join(line.strip() for line in lines if line)
            assert shown.split() == f"you: {words} chat: echo: {words}".split()


async def test_kernel_startup_failure_is_shown_not_raised(store: Store) -> None:
    with anyio.fail_after(20):
        config = Config(llm=LLMConfig(model="no-such-model"))
        app = make_app(config=config, store=store)
        async with running(app) as (pilot, messages):
            failed = [m for m in messages if isinstance(m, AiosApp.KernelFailed)]
            assert failed and "unknown model 'no-such-model'" in failed[0].error
            assert app.kernel is None
            assert "error: unknown model 'no-such-model'" in console_text(app)
            assert app.sub_title == "kernel not running"

            await type_prompt(pilot, "hello")
            await pilot.pause(0.1)
            assert app.is_running
            assert table_rows(app) == {}


async def test_table_shows_rate_and_context_and_keys_suspend_and_renice(store: Store) -> None:
    with anyio.fail_after(30):
        app = make_app(config=Config(), runtime=FakeBackend(token_delay=0.005), store=store)
        async with running(app) as (pilot, _):
            await type_prompt(pilot, "hello there friend")
            await wait_for(pilot, lambda: "echo: hello there friend" in console_text(app), "the reply")
            pid = app.selected_pid
            assert pid is not None
            table = app.process_table
            await wait_for(pilot, lambda: table.cell(pid, "context") == "resident", "the context column")
            await wait_for(pilot, lambda: table.cell(pid, "rate") != "-", "a tokens/s figure")
            assert float(table.cell(pid, "rate")) > 0
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: state_of(app, pid) == "suspended", "suspension")
            await pilot.press("ctrl+t")
            await wait_for(pilot, lambda: state_of(app, pid) == "waiting_input", "resumption")
            assert table.cell(pid, "priority") == "normal"
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: table.cell(pid, "priority") == "background", "the new class")
