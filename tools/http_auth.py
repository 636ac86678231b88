"""The bearer token that guards ``aios mcp serve --http``, and the ASGI middleware that checks it.

The token is 32 random bytes (``secrets.token_urlsafe``) in ``mcp-http.token`` in the data dir, mode 0600.
It is made on the first ``--http`` start and replaced by ``aios mcp token --rotate``; the middleware re-reads
the file when it changes, so a rotation locks out the old token at once, even in a running server. Every
HTTP request (every path, not only ``/mcp``) must carry ``Authorization: Bearer <token>``; anything else is
answered 401 with a JSON error and never reaches the MCP app. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aios import paths
from aios.errors import AiosError, UsageError

__all__ = [
    "BearerAuth",
    "Listen",
    "TokenFile",
    "create_token",
    "ensure_token",
    "parse_listen",
]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/mcp"


def parse_listen(value: str, *, allow_remote: bool = False) -> Listen:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); ``[::1]:PORT`` for IPv6. A host that is not a
    loopback address needs ``allow_remote``."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--http wants HOST:PORT, got {value!r}", "e.g. --http 127.0.0.1:8765")
    listen = Listen(host, int(port))
    if not listen.loopback and not allow_remote:
        raise UsageError(
            f"--http {value}: {host} is not a loopback address; other machines could connect",
            "add --allow-remote if that is what you want",
        )
    return listen


def _write_private(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text``, the new file created 0600 whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_token(path: Path | None = None) -> str:
    """Make a new token (replacing any old one) and return it."""
    token = secrets.token_urlsafe(32)
    _write_private(path or paths.mcp_http_token_path(), token)
    log.info("new MCP HTTP bearer token in %s", path or paths.mcp_http_token_path())
    return token


def _read_token(path: Path) -> str:
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise AiosError(f"{path}: not a regular file", "remove it, then run `aios mcp token --rotate`")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # As sshd with a loose key: a token others could read is no secret any more.
        raise AiosError(
            f"{path} is readable or writable by other users (mode {stat.S_IMODE(st.st_mode):o})",
            f"run `chmod 600 {path}` and `aios mcp token --rotate`",
        )
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < 32:
        raise AiosError(f"{path}: no usable token in it", "run `aios mcp token --rotate`")
    return token


def ensure_token(path: Path | None = None) -> tuple[str, bool]:
    """The stored token, made first if there is none; returns ``(token, created)``."""
    path = path or paths.mcp_http_token_path()
    try:
        return _read_token(path), False
    except FileNotFoundError:
        return create_token(path), True


class TokenFile:
    """The current token, re-read whenever the file changes (a ``stat`` per request, ~2 us)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._token: bytes | None = None

    def current(self) -> bytes | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # deleted: nobody gets in until a new token is made
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            try:
                self._token = _read_token(self.path).encode()
            except (OSError, AiosError) as exc:
                log.warning("MCP HTTP token unusable, refusing every request: %s", exc)
                self._token = None
            self._key = key
        return self._token


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            scheme, _, credentials = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


class BearerAuth:
    """ASGI middleware: HTTP requests without the right bearer token get 401 and go no further."""

    def __init__(self, app: ASGIApp, tokens: TokenFile) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        expected = self.tokens.current()
        given = _bearer(scope)
        if expected is not None and given is not None and hmac.compare_digest(given, expected):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("?", 0)
        log.warning(
            "MCP HTTP: refused %s %s from %s:%s", scope.get("method", scope["type"]), scope.get("path"), *client
        )
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        why = "missing bearer token" if given is None else "wrong bearer token"
        body = json.dumps({"error": "unauthorized", "error_description": why}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="aios", error="invalid_token"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
