"""The async socket client under cancellation: a front end that leaves (``async with SocketClient`` exits, a
TUI closes) while the kernel is still writing events to it must leave cleanly, with no error raised
later from the event loop."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from kernel.client import SocketClient
from kernel.unix_streams import socket_stream

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeKernel:
    """Just enough of the kernel's HTTP surface (``/v1/hello`` and an ``/v1/events`` stream) to hold a client."""

    def __init__(self) -> None:
        self.streams: list[asyncio.StreamWriter] = []
        self.streaming = asyncio.Event()
        self.connections = 0
        #: Close each connection after this many answers (0: keep it open), as a restarting kernel would.
        self.answers_per_connection = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = 0
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/v1/events"):
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                    )
                    await writer.drain()
                    self.streams.append(writer)
                    self.streaming.set()
                    await reader.read()  # until the client goes
                    return
                body = json.dumps({"result": {"model_name": "fake", "process": None}}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n")
                writer.write(b"content-length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
                answered += 1
                if answered == self.answers_per_connection:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def event(self, data: dict[str, Any]) -> None:
        line = b"data: " + json.dumps(data).encode() + b"\n\n"
        for writer in self.streams:
            writer.write(b"%x\r\n%s\r\n" % (len(line), line))


@asynccontextmanager
async def fake_kernel() -> AsyncIterator[tuple[FakeKernel, Path]]:
    fake = FakeKernel()
    path = Path(tempfile.mkdtemp(prefix="aios-", dir="/tmp")) / "k.sock"
    server = await asyncio.start_unix_server(fake.handle, path=str(path))
    try:
        yield fake, path
    finally:
        server.close()
        path.unlink(missing_ok=True)
        path.parent.rmdir()


async def test_leaving_while_an_event_arrives_raises_nothing_later() -> None:
    """The event pump is cancelled (the client leaves) in the same loop turn as the kernel's next event
    becomes readable. Over anyio's raw UNIX socket stream the reader callback then sets the result of the
    already-cancelled read future: ``InvalidStateError`` from the loop, which fails whoever runs it."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    async with fake_kernel() as (fake, path):
        for _ in range(5):
            async with SocketClient(path, "token") as client:
                await client.open_events()
                await fake.streaming.wait()
                await asyncio.sleep(0.05)  # the pump now waits for the next event
                fake.event({"type": "tick"})
                await asyncio.sleep(0)  # readable next turn, behind this task's resumption: it leaves first
            fake.streams.clear()
            for _ in range(3):
                await asyncio.sleep(0)
    assert not errors, errors[0].get("exception")


async def test_no_kernel_at_the_socket_is_a_clear_error(tmp_path: Path) -> None:
    from aios.errors import AiosError

    with pytest.raises(AiosError, match=r"cannot reach the kernel at .*nothing\.sock"):
        async with SocketClient(tmp_path / "nothing.sock", "token"):
            pass


async def test_requests_share_one_kept_alive_connection() -> None:
    async with fake_kernel() as (fake, path):
        async with SocketClient(path, "token") as client:
            for _ in range(5):
                assert (await client.arequest("GET", "/v1/hello"))["model_name"] == "fake"
    assert fake.connections == 1


async def test_a_worker_channel_read_cancelled_as_a_frame_arrives_raises_nothing_later() -> None:
    """The kernel's side of a worker's socketpair: its serving task is cancelled (kill, shutdown) in the same
    turn as the worker's next frame becomes readable."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    for _ in range(5):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stream = await socket_stream(ours)
        reading = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0.01)  # it waits for the worker's next frame
        theirs.send(b"frame")
        await asyncio.sleep(0)
        reading.cancel()  # one turn later: the frame is readable in this same turn
        with pytest.raises(asyncio.CancelledError):
            await reading
        for _ in range(3):
            await asyncio.sleep(0)
        await stream.aclose()
        theirs.close()
    assert not errors, errors[0].get("exception")


async def test_the_worker_channel_is_a_byte_stream() -> None:
    import anyio

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    stream = await socket_stream(ours)
    await stream.send(b"hello")
    assert theirs.recv(5) == b"hello"
    theirs.send(b"back")
    assert await stream.receive() == b"back"
    theirs.close()
    with pytest.raises(anyio.EndOfStream):
        await stream.receive()
    await stream.aclose()
    with pytest.raises(anyio.ClosedResourceError):
        await stream.send(b"late")


async def test_an_idle_connection_the_kernel_closed_is_not_reused() -> None:
    async with fake_kernel() as (fake, path):
        fake.answers_per_connection = 1
        async with SocketClient(path, "token") as client:
            for _ in range(3):
                assert (await client.arequest("GET", "/v1/hello"))["model_name"] == "fake"
                await asyncio.sleep(0.05)  # the close reaches the client's side
    assert fake.connections == 4  # the hello on entering, then one a request
