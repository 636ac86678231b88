"""MCP server configuration: the ``mcpServers`` JSON users already have (Claude Desktop / Cursor format).

``mcp.json`` in the config dir holds ``{"mcpServers": {name: {...}}}``. Each server is either a stdio
command (``command``, ``args``, ``env``, ``cwd``) or a streamable-HTTP endpoint (``url``, ``headers``), plus
aios's optional keys: ``timeout`` (seconds per call without progress), ``max_call_s`` (hard cap),
``allowed_tools`` / ``denied_tools`` (globs over the server's own tool names), ``autostart`` (start at kernel
boot instead of on first use) and ``egress`` (its tools reach the network). Strings may use ``${env:VAR}``
and ``${env:VAR:-default}``. Keys other clients add (``type``, ``disabled``, ``autoApprove``...) are kept
when the file is rewritten and otherwise ignored.

Values of ``env`` and ``headers`` and URL credentials are secrets: ``redacted()`` hides them for listings,
and ``Redactor`` scrubs their expanded values out of any log line or error text.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aios import paths
from aios.errors import ConfigError

__all__ = [
    "DEFAULT_CALL_TIMEOUT_S",
    "Redactor",
    "ServerConfig",
    "expand_env",
    "load_servers",
    "load_servers_lenient",
    "parse_servers",
    "read_mcp_file",
    "write_mcp_file",
]

log = logging.getLogger(__name__)

DEFAULT_CALL_TIMEOUT_S = 60.0
#: Server names become the ``server.`` prefix of tool names: no dots, nothing a glob would misread.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_KNOWN = {
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "timeout",
    "max_call_s",
    "allowed_tools",
    "denied_tools",
    "autostart",
    "egress",
    "type",
    "transport",
    "disabled",
}
_SECRET_QUERY = re.compile(r"(key|token|secret|password|auth|sig)", re.I)
REDACTED = "***"


def expand_env(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace ``${env:VAR}`` / ``${env:VAR:-default}``; an unset variable without a default is an error."""
    env = os.environ if environ is None else environ

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{where}: environment variable {name} is not set", f"export {name}=... or use ${{env:{name}:-default}}"
        )

    return _ENV_RE.sub(sub, value)


@dataclass(frozen=True)
class ServerConfig:
    """One configured server, with ``${env:...}`` already expanded (``raw`` keeps the text as written)."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_CALL_TIMEOUT_S
    max_call_s: float | None = None
    allowed_tools: tuple[str, ...] = ()
    denied_tools: tuple[str, ...] = ()
    autostart: bool = False
    egress: bool = False
    disabled: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def transport(self) -> str:
        return "stdio" if self.command else "http"

    @property
    def hard_cap_s(self) -> float:
        return self.max_call_s if self.max_call_s is not None else max(self.timeout * 10, 600.0)

    def tool_allowed(self, tool: str) -> bool:
        if any(fnmatch.fnmatchcase(tool, p) for p in self.denied_tools):
            return False
        return not self.allowed_tools or any(fnmatch.fnmatchcase(tool, p) for p in self.allowed_tools)

    def secrets(self) -> list[str]:
        found = [v for v in (*self.env.values(), *self.headers.values()) if v]
        if self.url:
            parts = urlsplit(self.url)
            if parts.password:
                found.append(parts.password)
            for pair in parts.query.split("&"):
                key, _, value = pair.partition("=")
                if value and _SECRET_QUERY.search(key):
                    found.append(value)
        return [s for s in found if len(s) >= 4]

    def redacted(self) -> dict[str, Any]:
        """The config as a listing may show it: secret values replaced by ``***``."""
        out: dict[str, Any] = {"name": self.name, "transport": self.transport}
        if self.command:
            out["command"] = self.command
            out["args"] = Redactor(self.secrets()).scrub_all(self.args)
        if self.url:
            out["url"] = _redact_url(self.url)
        if self.env:
            out["env"] = {k: REDACTED for k in self.env}
        if self.headers:
            out["headers"] = {k: REDACTED for k in self.headers}
        out.update(timeout=self.timeout, autostart=self.autostart)
        for key in ("allowed_tools", "denied_tools"):
            if getattr(self, key):
                out[key] = list(getattr(self, key))
        if self.egress:
            out["egress"] = True
        if self.disabled:
            out["disabled"] = True
        return out


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = f"{parts.username}:{REDACTED}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    query = "&".join(
        f"{k}={REDACTED}" if v and _SECRET_QUERY.search(k) else (f"{k}={v}" if sep else k)
        for k, sep, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Redactor:
    """Scrubs known secret values out of text before it is logged or shown."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({*self._secrets, *(s for s in secrets if len(s) >= 4)}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def scrub_all(self, items: Iterable[str]) -> list[str]:
        return [self.scrub(i) for i in items]


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must be an object of strings")
    return dict(value)


def _number(value: Any, where: str, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of seconds")
    return float(value)


def parse_server(name: str, spec: Any, environ: Mapping[str, str] | None = None) -> ServerConfig:
    """Validate and expand one ``mcpServers`` entry; errors name the server and key, never a value."""
    if not _NAME_RE.match(name):
        raise ConfigError(f"MCP server name {name!r} must be 1-64 letters, digits, '_' or '-'")
    if not isinstance(spec, dict):
        raise ConfigError(f"mcpServers.{name} must be an object")
    unknown = set(spec) - _KNOWN
    if unknown:
        log.debug("mcpServers.%s: ignoring keys %s", name, ", ".join(sorted(unknown)))
    w = f"mcpServers.{name}"
    command, url = spec.get("command"), spec.get("url")
    if bool(command) == bool(url):
        raise ConfigError(f"{w} needs exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
    if command is not None and not isinstance(command, str):
        raise ConfigError(f"{w}.command must be a string")
    if url is not None and (
        not isinstance(url, str) or not expand_env(url, w, environ).startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{w}.url must be an http:// or https:// URL")
    for flag in ("autostart", "egress", "disabled"):
        if flag in spec and not isinstance(spec[flag], bool):
            raise ConfigError(f"{w}.{flag} must be true or false")
    cwd = spec.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise ConfigError(f"{w}.cwd must be a string")

    def x(text: str, key: str) -> str:
        return expand_env(text, f"{w}.{key}", environ)

    return ServerConfig(
        name=name,
        command=x(command, "command") if command else None,
        args=tuple(x(a, "args") for a in _str_list(spec.get("args"), f"{w}.args")),
        env={k: x(v, f"env.{k}") for k, v in _str_map(spec.get("env"), f"{w}.env").items()},
        cwd=x(cwd, "cwd") if cwd else None,
        url=x(url, "url") if url else None,
        headers={k: x(v, f"headers.{k}") for k, v in _str_map(spec.get("headers"), f"{w}.headers").items()},
        timeout=_number(spec.get("timeout"), f"{w}.timeout", DEFAULT_CALL_TIMEOUT_S) or DEFAULT_CALL_TIMEOUT_S,
        max_call_s=_number(spec.get("max_call_s"), f"{w}.max_call_s", None),
        allowed_tools=_str_list(spec.get("allowed_tools"), f"{w}.allowed_tools"),
        denied_tools=_str_list(spec.get("denied_tools"), f"{w}.denied_tools"),
        autostart=bool(spec.get("autostart", False)),
        egress=bool(spec.get("egress", False)),
        disabled=bool(spec.get("disabled", False)),
        raw=dict(spec),
    )


def parse_servers(
    data: Any, *, source: str = "mcp.json", environ: Mapping[str, str] | None = None
) -> dict[str, ServerConfig]:
    """Parse a whole document: ``{"mcpServers": {...}}`` (other top-level keys ignored) or the bare map."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object with an 'mcpServers' key")
    servers = data.get("mcpServers", data.get("servers", {}))
    if not isinstance(servers, dict):
        raise ConfigError(f"{source}: 'mcpServers' must be an object")
    return {name: parse_server(name, spec, environ) for name, spec in servers.items()}


def read_mcp_file(path: Path | None = None) -> dict[str, Any]:
    """The raw document (``{}`` when the file does not exist)."""
    path = path or paths.mcp_config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data


def write_mcp_file(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write atomically with mode 0600 (the file may hold tokens)."""
    path = path or paths.mcp_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def load_servers(path: Path | None = None) -> dict[str, ServerConfig]:
    path = path or paths.mcp_config_path()
    return parse_servers(read_mcp_file(path), source=str(path))


def load_servers_lenient(path: Path | None = None) -> tuple[dict[str, ServerConfig], dict[str, str]]:
    """Every server that parses, and a one-line error for each that does not (one bad entry, e.g. an unset
    ``${env:...}``, must not take the others down)."""
    path = path or paths.mcp_config_path()
    doc = read_mcp_file(path)
    servers = doc.get("mcpServers", doc.get("servers", {}))
    if not isinstance(servers, dict):
        raise ConfigError(f"{path}: 'mcpServers' must be an object")
    good: dict[str, ServerConfig] = {}
    bad: dict[str, str] = {}
    for name, spec in servers.items():
        try:
            good[name] = parse_server(name, spec)
        except ConfigError as exc:
            bad[name] = exc.one_line()
    return good, bad
