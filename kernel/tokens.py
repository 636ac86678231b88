"""Bearer tokens: the front end's (full rights, in a file only the user can read) and one per process.

A process token is minted when the process is spawned and bound to its pid (and so to its capability set);
it dies when the process ends. Only a hash of each secret is kept; tokens are compared in constant time.
Identity always comes from the token, never from anything else a caller sends.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from aios.errors import AiosError

__all__ = ["FRONTEND", "TokenError", "TokenRegistry", "read_frontend_token", "write_frontend_token"]

#: The token id audit rows carry for calls made with the front-end token.
FRONTEND = "frontend"
_PREFIX = "aios_"


class TokenError(AiosError):
    """A missing, malformed, forged or expired token."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class Bearer:
    """Who a token says the caller is: the front end (``pid`` None) or one process."""

    token_id: str
    pid: int | None

    @property
    def frontend(self) -> bool:
        return self.pid is None


class TokenRegistry:
    def __init__(self) -> None:
        self._by_id: dict[str, tuple[int | None, bytes]] = {}
        self._id_of_pid: dict[int, str] = {}
        self._frontend: bytes | None = None

    def set_frontend(self, token: str) -> None:
        self._frontend = _digest(token)

    def mint(self, pid: int) -> str:
        """A new token for ``pid`` (replacing any earlier one)."""
        self.revoke(pid)
        token_id = secrets.token_hex(4)
        while token_id in self._by_id or token_id == FRONTEND:
            token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        self._by_id[token_id] = (pid, _digest(secret))
        self._id_of_pid[pid] = token_id
        return f"{_PREFIX}{token_id}.{secret}"

    def token_id(self, pid: int) -> str:
        return self._id_of_pid.get(pid, "")

    def revoke(self, pid: int) -> None:
        token_id = self._id_of_pid.pop(pid, None)
        if token_id is not None:
            self._by_id.pop(token_id, None)

    def resolve(self, token: str | None) -> Bearer:
        if not token:
            raise TokenError("missing token", "send `Authorization: Bearer <token>`")
        if self._frontend is not None and hmac.compare_digest(_digest(token), self._frontend):
            return Bearer(FRONTEND, None)
        body = token[len(_PREFIX) :] if token.startswith(_PREFIX) else ""
        token_id, _, secret = body.partition(".")
        entry = self._by_id.get(token_id)
        if entry is None or not secret:
            # Same message for forged and expired: a caller learns nothing about which ids exist.
            raise TokenError("invalid or expired token")
        pid, digest = entry
        if not hmac.compare_digest(_digest(secret), digest):
            raise TokenError("invalid or expired token")
        return Bearer(token_id, pid)


def write_frontend_token(path: Path) -> str:
    """A fresh front-end token in ``path``, created with mode 0600 (readable by the user only)."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    token = f"{_PREFIX}{FRONTEND}.{secrets.token_urlsafe(32)}"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token)
    return token


def read_frontend_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
