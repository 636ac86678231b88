"""The kernel's client, for front ends and out-of-process agents: see ``kernel.client`` (kept importable here)."""

from __future__ import annotations

from kernel.client import (
    AuthError,
    DaemonClient,
    ExternalAgent,
    KernelClient,
    SocketClient,
    daemon_client,
    default_socket,
    default_token_file,
)

__all__ = [
    "AuthError",
    "DaemonClient",
    "ExternalAgent",
    "KernelClient",
    "SocketClient",
    "daemon_client",
    "default_socket",
    "default_token_file",
]
