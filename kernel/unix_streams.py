"""Unix-socket streams on asyncio's stream transports, for the kernel's two socket conversations: a worker's
frames (``socket_stream``) and the async client's HTTP (``unix_transport``).

anyio's raw-socket UNIX stream (``UNIXSocketStream``, also what httpx's ``uds=`` transport connects through)
waits for readiness with ``loop.add_reader(sock, future.set_result, None)``. When the task reading is
cancelled in the same loop turn as the socket becomes readable (a front end leaving while the kernel writes
it an event; a worker killed while it writes a frame), the reader callback then sets the result of the
cancelled future and the loop reports ``InvalidStateError`` to whoever runs it (anyio 4.16; pytest's anyio
runner fails the test with it). asyncio's stream transports check for that.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Any

import anyio
import anyio.abc
import httpcore
import httpx

__all__ = ["AsyncioByteStream", "socket_stream", "unix_transport"]


class AsyncioByteStream(anyio.abc.ByteStream):
    """anyio's byte-stream interface over an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    _closed = False

    @property
    def socket(self) -> Any:
        """The transport's socket (asyncio's ``TransportSocket``), None once closed."""
        return self._writer.get_extra_info("socket")

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            data = await self._reader.read(max_bytes)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            self._writer.write(item)
            await self._writer.drain()
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        self._writer.write_eof()

    async def aclose(self) -> None:
        self._closed = True
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


async def socket_stream(sock: socket.socket) -> AsyncioByteStream:
    """A connected Unix socket (a socketpair's end) as an anyio byte stream; the stream owns the socket."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    return AsyncioByteStream(reader, writer)


def unix_transport(path: str) -> httpx.AsyncHTTPTransport:
    """An httpx transport to the Unix socket at ``path`` whose connections are asyncio streams."""
    transport = httpx.AsyncHTTPTransport(uds=path)
    # httpx takes no network backend; its pool is the one attribute to swap (a test fails if that changes).
    transport._pool = httpcore.AsyncConnectionPool(uds=path, network_backend=_AsyncioUnixBackend())
    return transport


class _HttpcoreStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: AsyncioByteStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            with anyio.fail_after(timeout):
                await self._stream.send(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS over the kernel's Unix socket is not supported")

    def get_extra_info(self, info: str) -> Any:
        sock = self._stream.socket
        if info == "socket":
            return sock
        if info == "is_readable":  # the pool asks before reusing an idle connection: readable = closed by peer
            if sock is None or sock.fileno() < 0:
                return True
            try:
                return bool(select.select([sock], [], [], 0)[0])
            except (OSError, ValueError):
                return True
        return None


class _AsyncioUnixBackend(httpcore.AsyncNetworkBackend):
    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        stream = AsyncioByteStream(reader, writer)
        for option in socket_options or ():
            stream.socket.setsockopt(*option)
        return _HttpcoreStream(stream)

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the kernel client connects only to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
