"""httpx over the kernel's Unix socket on asyncio streams.

httpx's own Unix-socket transport connects through anyio's raw-socket stream, which waits for readiness with
``loop.add_reader(sock, future.set_result, None)``. When the task reading is cancelled in the same loop turn
as the socket becomes readable (a front end leaving while the kernel writes it an event), the reader
callback then sets the result of the cancelled future and the loop reports ``InvalidStateError`` to
whoever runs it (anyio 4.16; pytest's anyio runner fails the test). asyncio's stream transports check for
that, so the async client reads and writes through them instead.
"""

from __future__ import annotations

import asyncio
import select
from typing import Any

import anyio
import httpcore
import httpx

__all__ = ["unix_transport"]


def unix_transport(path: str) -> httpx.AsyncHTTPTransport:
    """An httpx transport to the Unix socket at ``path`` whose connections are asyncio streams."""
    transport = httpx.AsyncHTTPTransport(uds=path)
    # httpx takes no network backend; its pool is the one attribute to swap (a test fails if that changes).
    transport._pool = httpcore.AsyncConnectionPool(uds=path, network_backend=_AsyncioUnixBackend())
    return transport


class _AsyncioUnixStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            with anyio.fail_after(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("TLS over the kernel's Unix socket is not supported")

    def get_extra_info(self, info: str) -> Any:
        sock = self._writer.get_extra_info("socket")
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
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _AsyncioUnixStream(reader, writer)

    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the kernel client connects only to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
