"""The framed JSON protocol between the kernel and an agent's worker process, over an inherited socketpair.

One frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON (an object). The connection is the
identity: the kernel made the socketpair for one process and handed the other end to that worker only.

    kernel -> worker   {"op": "start", ...}                  once, first
    worker -> kernel   {"op": "hello", "token": ..., "confinement": ...}
    kernel -> worker   {"op": "welcome"}                      token checked; the plugin may now be imported
    worker -> kernel   {"id": n, "op": "call"|"chat"|"write"|"end_turn"|"input"|"cancel", ...}
    kernel -> worker   {"id": n, "result": ...} | {"id": n, "error": {...}} | {"id": n, "piece": ...}
    worker -> kernel   {"op": "exit", "result": ...} | {"op": "failed", "error": ...}   once, last
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

__all__ = ["MAX_FRAME", "FrameError", "decode", "encode", "recv_frame_blocking", "send_frame_blocking"]

_HEADER = struct.Struct(">I")
#: The largest frame either side accepts (the kernel passes its own, smaller limit for requests).
MAX_FRAME = 64 * 2**20


class FrameError(ValueError):
    """A frame that is too large, not JSON, or not an object."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, default=str, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def header_size(header: bytes, limit: int = MAX_FRAME) -> int:
    (size,) = _HEADER.unpack(header)
    if size > limit:
        raise FrameError(f"frame of {size} bytes is over the limit of {limit}")
    return size


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError(f"frame is a JSON {type(message).__name__}, not an object")
    return message


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv_frame_blocking(sock: socket.socket, limit: int = MAX_FRAME) -> dict[str, Any]:
    return decode(_recv_exact(sock, header_size(_recv_exact(sock, _HEADER.size), limit)))


def send_frame_blocking(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))


HEADER_SIZE = _HEADER.size
